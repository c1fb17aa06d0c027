"""First run and the command line: the owner is created once with a credential shown once (never logged),
and ``bastion users`` / ``bastion keys`` manage accounts and keys."""

from __future__ import annotations

import asyncio
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from bastion.cli import main
from tests.conftest import eventually, serve
from tests.identity.conftest import bearer, probe_module, service_of
from tests.support import routes_module

CREDENTIAL = re.compile(r"password: (\S+)")


async def _owner_count(app) -> int:
    async with app.platform.db.session() as db:
        return int(await db.scalar(text("SELECT count(*) FROM identity_users WHERE role = 'owner'")) or 0)


async def test_first_start_creates_the_owner_once_and_prints_it_to_stderr(
    identity_settings, make_app, capsys, logs, database
):
    """On an empty database the app creates the owner and prints its password once on stderr; the log
    never holds it; the printed credential signs in; a restart creates and prints nothing."""
    settings = identity_settings(identity={"bootstrap_owner": True, "owner_email": "boss@example.com"}, **database)
    app = make_app(settings, extra=(routes_module, probe_module))
    async with serve(app) as http:
        await eventually(lambda: _owner_count(app))
        err = capsys.readouterr().err
        password = CREDENTIAL.search(err).group(1)
        signed_in = await http.post("/auth/login", json={"email": "boss@example.com", "password": password})
    assert signed_in.status_code == 200 and signed_in.json()["user"]["role"] == "owner"
    assert err.count("password:") == 1
    assert all(password not in str(line) for line in logs())
    again = make_app(settings, extra=(routes_module, probe_module))
    async with serve(again):
        await service_of(again).bootstrap
        assert await _owner_count(again) == 1
    assert "password:" not in capsys.readouterr().err


async def test_bootstrap_on_an_unmigrated_database_does_not_stop_the_app(
    make_app, identity_settings, postgres_url, logs
):
    """Without the identity tables (PostgreSQL not migrated) the app still serves and says what to run."""
    settings = identity_settings(identity={"bootstrap_owner": True}, database_url=postgres_url)
    app = make_app(settings, extra=(routes_module,))
    async with serve(app) as http:
        await service_of(app).bootstrap
        response = await http.get("/health/live")
    assert response.status_code == 200
    warning = next(line for line in logs() if line["event"].startswith("owner bootstrap skipped"))
    assert warning["level"] == "warning" and "bastion migrate" in warning["event"]


@pytest.fixture
def cli_env(tmp_path):
    return {
        "BASTION_DATA_DIR": str(tmp_path / "cli"),
        "BASTION_IDENTITY__ARGON2_TIME_COST": "1",
        "BASTION_IDENTITY__ARGON2_MEMORY_KIB": "1024",
        "BASTION_LOG_FORMAT": "json",
    }


def _invoke(env, *args, stdin: str | None = None):
    result = CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)
    return result


def test_cli_create_owner_once(cli_env):
    """`bastion users create-owner` makes the owner and prints its password once; a second run refuses."""
    first = _invoke(cli_env, "users", "create-owner", "--email", "boss@example.com")
    second = _invoke(cli_env, "users", "create-owner")
    assert first.exit_code == 0 and CREDENTIAL.search(first.output)
    assert second.exit_code == 1 and "exist" in second.output


def test_cli_manages_users(cli_env):
    """create, set-plan, set-role, disable and list work from the command line."""
    created = _invoke(
        cli_env, "users", "create", "--email", "ada@example.com", "--password-stdin", stdin="a long enough password\n"
    )
    _invoke(cli_env, "users", "set-plan", "ada@example.com", "pro")
    _invoke(cli_env, "users", "set-role", "ada@example.com", "admin")
    _invoke(cli_env, "users", "disable", "ada@example.com")
    listing = _invoke(cli_env, "users", "list")
    assert created.exit_code == 0 and "password:" not in created.output
    line = next(line for line in listing.output.splitlines() if "ada@example.com" in line)
    assert line.split()[-3:] == ["admin", "pro", "disabled"]


def test_cli_reports_domain_errors_in_one_line(cli_env):
    """A refused operation is one 'error:' line and exit status 1, not a traceback."""
    _invoke(cli_env, "users", "create", "--email", "ada@example.com")
    again = _invoke(cli_env, "users", "create", "--email", "ADA@example.com")
    assert again.exit_code == 1 and again.output.strip().startswith("error:")


def test_cli_creates_lists_and_revokes_keys(cli_env):
    """keys create prints the key once; keys list shows only its prefix; keys revoke removes it."""
    _invoke(cli_env, "users", "create", "--email", "ada@example.com")
    created = _invoke(
        cli_env, "keys", "create", "--user", "ada@example.com", "--name", "ci", "--scope", "kv", "--app", "notes"
    )
    key = re.search(r"key: (bsk_\S+)", created.output).group(1)
    key_id = re.search(r"id: (\w+)", created.output).group(1)
    listed = _invoke(cli_env, "keys", "list")
    revoked = _invoke(cli_env, "keys", "revoke", key_id)
    after = _invoke(cli_env, "keys", "list")
    assert key not in listed.output and f"bsk_{key_id}" in listed.output and "kv" in listed.output
    assert revoked.exit_code == 0 and key_id not in after.output


@pytest.mark.redis
async def test_cli_revocation_reaches_a_running_instance_at_once(identity_settings, make_app, redis_url, tmp_path):
    """`bastion keys revoke` in another process's role: the running instance refuses the key right after."""
    data_dir = tmp_path / "shared"
    settings = identity_settings(redis_url=redis_url, data_dir=data_dir)
    env = {
        "BASTION_DATA_DIR": str(data_dir),
        "BASTION_REDIS_URL": redis_url,
        "BASTION_REDIS_PREFIX": settings.redis_prefix,
        "BASTION_IDENTITY__ARGON2_TIME_COST": "1",
        "BASTION_IDENTITY__ARGON2_MEMORY_KIB": "1024",
    }
    app = make_app(settings, extra=(routes_module, probe_module))
    async with serve(app) as http:
        await asyncio.to_thread(_invoke, env, "users", "create", "--email", "ada@example.com")
        created = await asyncio.to_thread(_invoke, env, "keys", "create", "--user", "ada@example.com", "--name", "x")
        key = re.search(r"key: (bsk_\S+)", created.output).group(1)
        key_id = re.search(r"id: (\w+)", created.output).group(1)
        assert (await http.get("/t/id/whoami", headers=bearer(key))).status_code == 200
        await asyncio.to_thread(_invoke, env, "keys", "revoke", key_id)
        response = await http.get("/t/id/whoami", headers=bearer(key))
    assert response.status_code == 401


def test_cli_validates_key_fields_like_the_api(cli_env):
    """A scope or app name the API would refuse is refused on the command line too."""
    _invoke(cli_env, "users", "create", "--email", "ada@example.com")
    bad_scope = _invoke(cli_env, "keys", "create", "--user", "ada@example.com", "--name", "x", "--scope", "KV!")
    bad_app = _invoke(cli_env, "keys", "create", "--user", "ada@example.com", "--name", "x", "--app", "My App")
    assert bad_scope.exit_code == 1 and "scopes" in bad_scope.output
    assert bad_app.exit_code == 1 and "Lower-case" in bad_app.output
