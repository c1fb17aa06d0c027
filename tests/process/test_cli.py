"""The ``bastion`` command as an operator runs it: configured only through BASTION_* variables."""

from __future__ import annotations

import base64
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.process.conftest import ROOT, bastion, free_port, serve_command, server_env

pytestmark = pytest.mark.slow

# no master key, '*' CORS with credentials, only local allowed hosts (the default), no security contact
UNSAFE: dict[str, str] = {"env": "production", "cors_origins": "*", "cors_allow_credentials": "true"}
UNSAFE_SETTINGS = (
    "BASTION_CRYPTO__KEYS",
    "BASTION_CORS_ORIGINS",
    "BASTION_ALLOWED_HOSTS",
    "BASTION_SECURITY_CONTACT",
    "BASTION_CRON_SECRET",
)
SAFE: dict[str, str] = {
    "env": "production",
    "crypto__keys": '{"k1": "' + base64.b64encode(b"k" * 32).decode() + '"}',
    "crypto__active_key_id": "k1",
    "cron_secret": "kY3v9QmTz2LwX8pR4nB7cD1fH6jG5sAe",
    "allowed_hosts": "api.example.com",
    "cors_origins": "https://app.example.com",
    "cors_allow_credentials": "true",
}


def _env(
    tmp_path: Path, settings: dict[str, str] | None = None, *, contact: bool = True, **more: str
) -> dict[str, str]:
    env = server_env(tmp_path / "data", **(settings or {}), **more)
    if not contact:
        del env["BASTION_SECURITY_CONTACT"]
    return env


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error: ")]


def test_check_config_passes_in_development_with_warnings(tmp_path: Path) -> None:
    """In development, unsafe settings are printed as warnings and check-config exits 0."""
    result = bastion("check-config", env=_env(tmp_path, contact=False), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: BASTION_CRYPTO__KEYS" in result.stdout
    assert "warning: BASTION_SECURITY_CONTACT" in result.stdout
    assert not _error_lines(result.stdout)


def test_check_config_names_each_unsafe_production_setting_on_its_own_line(tmp_path: Path) -> None:
    """In production, check-config exits 1 with one error line per unsafe setting."""
    result = bastion("check-config", env=_env(tmp_path, UNSAFE, contact=False), cwd=tmp_path)
    assert result.returncode == 1
    named = [line.split(":")[1].strip() for line in _error_lines(result.stdout)]
    for setting in UNSAFE_SETTINGS:
        assert named.count(setting) == 1, result.stdout
    assert "only local host names" in result.stdout


def test_check_config_rejects_a_wildcard_allowed_host_in_production(tmp_path: Path) -> None:
    """``BASTION_ALLOWED_HOSTS=*`` in otherwise safe production settings is an error naming the setting."""
    result = bastion("check-config", env=_env(tmp_path, {**SAFE, "allowed_hosts": "*"}), cwd=tmp_path)
    assert result.returncode == 1
    assert [line.split(":")[1].strip() for line in _error_lines(result.stdout)] == ["BASTION_ALLOWED_HOSTS"]


def test_check_config_passes_with_safe_production_settings(tmp_path: Path) -> None:
    """Safe production settings pass check-config with exit 0 and no error line."""
    result = bastion("check-config", env=_env(tmp_path, SAFE), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not _error_lines(result.stdout)
    assert "Configuration OK for production" in result.stdout


def test_check_config_names_an_invalid_value(tmp_path: Path) -> None:
    """An invalid value (a rate per fortnight) exits non-zero and names the setting."""
    result = bastion("check-config", env=_env(tmp_path, rate_limits__general="5/fortnight"), cwd=tmp_path)
    assert result.returncode != 0
    assert "BASTION_RATE_LIMITS__GENERAL" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_to_start_in_production_with_unsafe_settings(tmp_path: Path) -> None:
    """``bastion serve`` in production with unsafe settings exits non-zero, naming the problems."""
    port = free_port()
    env = _env(tmp_path, UNSAFE, contact=False)
    result = bastion("serve", "--port", str(port), env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "Refusing to start" in result.stderr
    for setting in UNSAFE_SETTINGS:
        assert setting in result.stderr
    assert "Listening" not in result.stderr + result.stdout


def test_new_master_key_prints_base64_of_32_bytes(tmp_path: Path) -> None:
    """``bastion new-master-key`` prints the base64 of 32 random bytes, different each time."""
    first = bastion("new-master-key", env=_env(tmp_path), cwd=tmp_path)
    second = bastion("new-master-key", env=_env(tmp_path), cwd=tmp_path)
    assert first.returncode == 0
    assert len(base64.b64decode(first.stdout.strip(), validate=True)) == 32
    assert first.stdout != second.stdout


def test_migrate_creates_the_database_in_a_fresh_data_dir(tmp_path: Path) -> None:
    """``bastion migrate`` on an empty SQLite data dir exits 0 and leaves the database file there."""
    result = bastion("migrate", env=_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "bastion.db").stat().st_size > 0


@pytest.mark.timeout(600)
def test_readme_serve_command_answers_ready_on_the_embedded_default(tmp_path: Path, start_server: Any) -> None:
    """``python3 dev.py serve`` (the README's command) answers /health/ready 200, and exits 0 on SIGTERM."""
    port = free_port()
    python3 = getattr(sys, "_base_executable", sys.executable)  # the machine's python3, not the venv's
    server = start_server(
        [python3, "dev.py", "serve", "--port", str(port)], env=_env(tmp_path), port=port, cwd=ROOT, name="readme"
    )
    server.wait_ready(timeout=480)  # dev.py runs `uv sync` first, which may install the bench group
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait_exit(timeout=40) == 0, server.output()[-3000:]


@pytest.mark.parametrize(
    ("server", "option", "expected"),
    [
        ("granian", (), "uvloop.Loop"),
        ("granian", ("--loop", "asyncio"), "asyncio.unix_events._UnixSelectorEventLoop"),
        ("uvicorn", (), "uvloop.Loop"),
        ("uvicorn", ("--loop", "asyncio"), "asyncio.unix_events._UnixSelectorEventLoop"),
    ],
)
def test_serve_runs_the_workers_on_the_chosen_event_loop(
    tmp_path: Path, start_server: Any, server: str, option: tuple[str, ...], expected: str
) -> None:
    port = free_port()
    started = start_server(
        serve_command("--server", server, "--port", str(port), *option),
        env=_env(tmp_path),
        port=port,
        name=f"loop-{server}",
    )
    started.wait_ready()
    assert httpx.get(f"{started.base_url}/t/loop", timeout=5).json() == {"loop": expected}
    assert f"({server}, {expected.split('.')[0]}," in started.output()  # the banner names the loop
