"""Real servers in subprocesses, configured only through ``BASTION_*`` environment variables.

Each server runs in a session of its own (``start_new_session``), so teardown can kill the whole
process group (supervisor and workers) whatever happened in the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 90.0  # a cold start imports everything and migrates SQLite; slow on a busy 2-core box


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The test process's environment without any BASTION_* setting, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(
        {
            "BASTION_DATA_DIR": str(data_dir),
            "BASTION_LOG_FORMAT": "json",
            "BASTION_SECURITY_CONTACT": "mailto:security@example.com",
        }
    )
    env.update({f"BASTION_{name.upper()}": value for name, value in settings.items()})
    return env


def bastion(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run one ``bastion`` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "bastion", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


class ServerProcess:
    """One ``bastion serve`` (or other server command) in its own process group, output in a file."""

    def __init__(self, command: Sequence[str], *, env: dict[str, str], cwd: Path, port: int, log: Path) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            list(command), env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Poll ``/health/ready`` until it answers 200; fail at once if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.proc.returncode} before it was ready:\n{self.output()[-4000:]}"
                )
            try:
                if httpx.get(f"{self.base_url}/health/ready", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready within {timeout}s:\n{self.output()[-4000:]}")

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
        return lines

    def kill_group(self) -> None:
        """SIGKILL everything in the server's process group (a no-op once it is gone)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._log.close()


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bastion", "serve", "--app", "tests.support_app:create", *args]


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("process")


@pytest.fixture(scope="module")
def start_server(module_tmp: Path) -> Iterator[Any]:
    """Start servers for the module; every one is killed (whole process group) at teardown."""
    started: list[ServerProcess] = []

    def start(
        command: Sequence[str], *, env: dict[str, str], port: int, cwd: Path | None = None, name: str = "server"
    ) -> ServerProcess:
        server = ServerProcess(
            command, env=env, cwd=cwd or module_tmp, port=port, log=module_tmp / f"{name}-{port}.log"
        )
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill_group()
