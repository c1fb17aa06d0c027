"""Worker processes for the RabbitMQ tests: ``python -m bastion worker`` with the test's settings in its
environment, which a test can SIGTERM, SIGKILL and start again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def env_of(settings: dict[str, Any], prefix: str = "BASTION_") -> dict[str, str]:
    """Nested settings as ``BASTION_A__B=value`` variables (lists and dicts as JSON)."""
    found: dict[str, str] = {}
    for key, value in settings.items():
        name = prefix + key.upper()
        if isinstance(value, dict):
            found.update(env_of(value, name + "__"))
        elif isinstance(value, list | tuple):
            found[name] = json.dumps(list(value))
        elif value is not None:
            found[name] = str(value)
    return found


class Worker:
    def __init__(self, settings: dict[str, Any], log: Path, concurrency: int = 8) -> None:
        self.settings = settings
        self.log = log
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        env.update(env_of(self.settings))
        env["BASTION_LOG_FORMAT"] = "json"
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bastion", "worker", "--concurrency", str(self.concurrency)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        return self

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found
