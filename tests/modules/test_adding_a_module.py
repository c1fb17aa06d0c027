"""Adding a module is a folder, its descriptor, one line in the list, its settings field and its migration
branch: the notes module (tests/modules/notes/), which exists only here, gets everything else from the core."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from bastion.app import create_app
from bastion.cli import add_module_commands, main
from bastion.core.module import check_config
from tests.conftest import serve
from tests.modules.notes.app import APP_MODULES, NotesAppSettings

SAFE_PRODUCTION = {
    "env": "production",
    "crypto": {"keys": {"k": "A" * 43 + "="}, "active_key_id": "k"},
    "cron_secret": "kY3v9QmTz2LwX8pR4nB7cD1fH6jG5sAe",
    "allowed_hosts": ["api.example.com"],
    "security_contact": "mailto:s@example.com",
}


@pytest.fixture
def notes_settings(tmp_path: Any) -> Any:
    def build(**overrides: Any) -> NotesAppSettings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "allowed_hosts": ["localhost"],
            "security_contact": "mailto:s@example.com",
            "log_format": "json",
        }
        return NotesAppSettings(_env_file=None, **{**values, **overrides})

    return build


async def test_the_module_serves_its_routes_on_its_own_migrated_table(notes_settings):
    """The app migrates the module's branch on start (embedded SQLite) and serves its routes."""
    async with serve(create_app(notes_settings(), modules=APP_MODULES)) as http:
        created = await http.post("/api/notes", json={"text": "remember the milk"})
        listed = await http.get("/api/notes")
    assert created.status_code == 201
    assert [n["text"] for n in listed.json()] == ["remember the milk"]


async def test_the_module_migrates_on_postgresql_too(notes_settings, postgres_url):
    """``bastion migrate`` semantics on PostgreSQL: the module's branch is applied with the others."""
    settings = notes_settings(database_url=postgres_url, auto_migrate=True)
    async with serve(create_app(settings, modules=APP_MODULES)) as http:
        assert (await http.post("/api/notes", json={"text": "on postgres"})).status_code == 201
        assert [n["text"] for n in (await http.get("/api/notes")).json()] == ["on postgres"]


async def test_its_settings_field_is_read_from_the_environment(notes_settings, monkeypatch):
    """``BASTION_NOTES__MAX_CHARS`` configures the module, and its own error reaches the client as problem+json."""
    monkeypatch.setenv("BASTION_NOTES__MAX_CHARS", "5")
    async with serve(create_app(notes_settings(), modules=APP_MODULES)) as http:
        refused = await http.post("/api/notes", json={"text": "far too long"})
    assert refused.status_code == 422 and refused.json()["code"] == "NOTE_TOO_LONG"


async def test_its_declared_tier_limits_its_routes(notes_settings):
    """The module's tier is in the table with its default, and its routes are counted against it."""
    async with serve(create_app(notes_settings(), modules=APP_MODULES)) as http:
        answer = await http.get("/api/notes")
    assert answer.headers["ratelimit-policy"] == '"notes";q=30;w=60'


async def test_its_tier_is_overridden_like_any_other(notes_settings):
    """``BASTION_RATE_LIMITS__NOTES`` overrides the declared default."""
    async with serve(create_app(notes_settings(rate_limits={"notes": "2/minute"}), modules=APP_MODULES)) as http:
        statuses = [(await http.get("/api/notes")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_its_problems_are_part_of_check_config(notes_settings):
    """``check-config`` reports the module's own unsafe settings, as errors in production."""
    settings = notes_settings(**SAFE_PRODUCTION, notes={"keep_days": 1})
    errors = [p.setting for p in check_config(settings, APP_MODULES) if p.severity == "error"]
    assert errors == ["BASTION_NOTES__KEEP_DAYS"]


def test_without_the_line_in_the_list_there_is_no_module(notes_settings):
    """The list is the only switch: without the descriptor, a configured tier of it is reported as unknown."""
    from bastion.modules import MODULES

    settings = notes_settings(rate_limits={"notes": "2/minute"})
    warnings = [p.setting for p in check_config(settings, MODULES) if p.severity == "warning"]
    assert "BASTION_RATE_LIMITS__NOTES" in warnings


def test_its_commands_join_the_cli():
    """The module's CLI commands are added to a composed ``bastion`` group."""
    import click

    group = add_module_commands(click.Group("bastion", commands=dict(main.commands)), APP_MODULES)
    result = CliRunner().invoke(group, ["notes-count"])
    assert result.exit_code == 0 and result.output == "notes: 0\n"
    assert {"users", "keys", "notes-count"} <= set(group.commands)
