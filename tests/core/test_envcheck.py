"""Configuration errors in one line naming the variable and the expected form; misspelled BASTION_* variables
named; the unsafe production cases flagged by check-config."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from bastion.core.crypto import new_key
from bastion.core.envcheck import explain, unknown_variables
from bastion.core.module import check_config
from bastion.modules import MODULES
from bastion.settings import Settings
from tests.process.conftest import bastion, server_env


def test_the_output_of_new_master_key_pasted_is_a_key() -> None:
    """The bare key, ``id=key`` pairs and JSON are all accepted; a single key is the active one."""
    key = new_key()
    assert Settings(_env_file=None, crypto={"keys": key}).crypto.active_key_id == "k1"
    pairs = Settings(_env_file=None, crypto={"keys": f"old={key},new={key}", "active_key_id": "new"}).crypto
    assert set(pairs.keys) == {"old", "new"}
    assert set(Settings(_env_file=None, crypto={"keys": f'{{"a": "{key}"}}'}).crypto.keys) == {"a"}


def test_a_bad_key_is_one_line_naming_the_variable_and_the_form() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, crypto={"keys": base64.b64encode(b"short").decode()})
    [line] = explain(caught.value, Settings)
    assert line.startswith("BASTION_CRYPTO__KEYS: ") and "bastion new-master-key" in line


def test_a_json_setting_that_does_not_parse_names_the_variable_and_the_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_AI__MODELS", "default=local:echo")
    with pytest.raises(SettingsError) as caught:
        Settings(_env_file=None)
    assert explain(caught.value, Settings, os.environ) == [
        'BASTION_AI__MODELS: the value does not parse; expected JSON like {"name": ["a", "b"]}'
    ]


def test_unknown_variables_are_named() -> None:
    environ = {
        "BASTION_DATABSE_URL": "x",  # misspelled
        "BASTION_DATABASE_URL": "x",
        "BASTION_AI__MAX_TOKENS": "5",
        "BASTION_AI__MAX_TOKEN": "5",  # misspelled
        "BASTION_RATE_LIMITS__SECRETS_CREATE": "5/minute",  # a tier: any name
        "BASTION_AI__PROVIDERS__OPENAI__KIND": "openai",  # below a mapping: data
        "BASTION_TEST_POSTGRES_URL": "x",  # the test suite's own
        "PATH": "/bin",
    }
    assert unknown_variables(Settings, environ) == ["BASTION_AI__MAX_TOKEN", "BASTION_DATABSE_URL"]


def test_production_flags_unknown_variables_and_the_unsafe_defaults(tmp_path: Path) -> None:
    """An unknown variable is an error in production (a warning in development); the development AI provider,
    open registration, anonymous AI and public metrics are flagged."""
    settings = Settings(_env_file=None, env="production", data_dir=tmp_path, ai={"allow_anonymous": True})
    found = {p.setting: p.severity for p in check_config(settings, MODULES, {"BASTION_DATABSE_URL": "x"})}
    assert found["BASTION_DATABSE_URL"] == "error"
    for setting in (
        "BASTION_AI__MODELS",
        "BASTION_IDENTITY__REGISTRATION",
        "BASTION_AI__ALLOW_ANONYMOUS",
        "BASTION_METRICS_TOKEN",
    ):
        assert setting in found, found
    development = Settings(_env_file=None, data_dir=tmp_path)
    assert {p.setting: p.severity for p in check_config(development, MODULES, {"BASTION_X": "1"})}["BASTION_X"] == (
        "warning"
    )


@pytest.mark.slow
def test_check_config_with_a_pasted_key_and_a_broken_json_says_one_line_each(tmp_path: Path) -> None:
    """The command line: no traceback, one ``error:`` line per variable, exit 2."""
    env = server_env(tmp_path / "data", crypto__keys="not a key", ai__models="{")
    result = bastion("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: BASTION_"), result.stderr
