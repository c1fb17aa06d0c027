#!/usr/bin/env python3
"""Run Bastion or its tests on a machine that has nothing but python3.

    python3 dev.py serve [bastion serve options]   # serve on the embedded default (http://127.0.0.1:8000)
    python3 dev.py test  [pytest options]          # the whole test suite
    python3 dev.py <command...>                    # any command inside the project environment

Finds uv (or installs it from PyPI into ./.tools), creates ./.venv from uv.lock, then runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"


def find_uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    local = TOOLS / "bin" / "uv"
    if not local.exists():
        print("dev.py: installing uv into .tools/ (from PyPI)", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
        subprocess.run([str(TOOLS / "bin" / "python"), "-m", "pip", "install", "--quiet", "uv"], check=True)
    return str(local)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    uv = find_uv()
    env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(ROOT / ".venv"))
    subprocess.run(
        [uv, "sync", "--frozen", "--all-groups", "--python", sys.executable, "--quiet"], cwd=ROOT, env=env, check=True
    )
    command, rest = argv[0], argv[1:]
    if command == "serve":
        args = ["bastion", "serve", *rest]
    elif command == "test":
        args = ["pytest", *rest]
    else:
        args = [command, *rest]
    run = [uv, "run", "--frozen", "--no-sync", *args]
    os.chdir(ROOT)
    os.execve(uv, run, env)  # replace this process: signals reach the server or pytest directly


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
