"""Configuration: parsing, defaults, and refusing unsafe production settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.app import create_app
from bastion.core.module import tier_rates
from bastion.core.settings import Rate
from bastion.modules import MODULES
from bastion.settings import Settings

SAFE = {
    "env": "production",
    "crypto": {"keys": {"k": "A" * 43 + "="}, "active_key_id": "k"},
    "cron_secret": "kY3v9QmTz2LwX8pR4nB7cD1fH6jG5sAe",
    "allowed_hosts": ["api.example.com"],
    "security_contact": "mailto:s@example.com",
}


def _tiers(settings: Settings) -> dict[str, Rate]:
    """The tier table the app builds: the modules' declared defaults, overridden by the settings."""
    return {name: rate for name, (rate, _fail_closed) in tier_rates(settings, MODULES).items()}


def test_default_tiers():
    """The documented default tiers are in force when nothing is configured."""
    tiers = _tiers(Settings(_env_file=None))
    assert tiers["general"] == Rate(60, 60) and tiers["ai"] == Rate(10, 60) and tiers["kv"] == Rate(1200, 60)
    assert tiers["auth"] == Rate(5, 60) and tiers["secrets_create"] == Rate(10, 60)
    assert tiers["secrets_read"] == Rate(60, 60)


def test_tiers_come_from_the_environment(monkeypatch):
    """BASTION_RATE_LIMITS__<TIER>=N/period sets a tier and adds new ones; the rest keep defaults."""
    monkeypatch.setenv("BASTION_RATE_LIMITS__AI", "20/hour")
    monkeypatch.setenv("BASTION_RATE_LIMITS__UPLOADS", "3/second")
    tiers = _tiers(Settings(_env_file=None))
    assert tiers["ai"] == Rate(20, 3600) and tiers["uploads"] == Rate(3, 1) and tiers["kv"] == Rate(1200, 60)


@pytest.mark.parametrize("bad", ["5/fortnight", "0/minute", "ten/minute", "5"])
def test_malformed_rates_are_rejected(monkeypatch, bad):
    """A rate that is not N/second|minute|hour|day is a validation error naming the tier."""
    monkeypatch.setenv("BASTION_RATE_LIMITS__GENERAL", bad)
    with pytest.raises(ValidationError, match="general"):
        Settings(_env_file=None)


def test_malformed_extra_tier_is_rejected(monkeypatch):
    """An added tier is validated like the built-in ones."""
    monkeypatch.setenv("BASTION_RATE_LIMITS__UPLOADS", "lots")
    with pytest.raises(ValidationError, match="uploads"):
        Settings(_env_file=None)


def test_lists_accept_commas_or_json(monkeypatch):
    """List settings take a comma-separated string or a JSON list."""
    monkeypatch.setenv("BASTION_ALLOWED_HOSTS", "a.example.com, b.example.com")
    monkeypatch.setenv("BASTION_CORS_ORIGINS", '["https://x.example.com"]')
    monkeypatch.setenv("BASTION_TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1")
    settings = Settings(_env_file=None)
    assert settings.allowed_hosts == ["a.example.com", "b.example.com"]
    assert settings.cors_origins == ["https://x.example.com"]
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.1.1/32"]


def test_safe_production_settings_have_no_errors():
    """A properly configured production environment has no problems."""
    assert [p for p in Settings(_env_file=None, **SAFE).problems() if p.severity == "error"] == []


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"crypto": {}}, "BASTION_CRYPTO__KEYS"),
        ({"cors_origins": ["*"], "cors_allow_credentials": True}, "BASTION_CORS_ORIGINS"),
        ({"allowed_hosts": []}, "BASTION_ALLOWED_HOSTS"),
        ({"allowed_hosts": ["*"]}, "BASTION_ALLOWED_HOSTS"),
        ({"allowed_hosts": ["localhost"]}, "BASTION_ALLOWED_HOSTS"),
        ({"security_contact": None}, "BASTION_SECURITY_CONTACT"),
        ({"crypto": {"keys": {"k": "A" * 43 + "="}, "active_key_id": "other"}}, "BASTION_CRYPTO__ACTIVE_KEY_ID"),
    ],
)
def test_each_unsafe_production_setting_is_named(override, setting):
    """Every unsafe production setting is reported as an error naming the variable to fix."""
    problems = Settings(_env_file=None, **{**SAFE, **override}).problems()
    assert any(p.severity == "error" and p.setting == setting for p in problems), problems


def test_development_only_warns():
    """The same unsafe settings in development are warnings."""
    problems = Settings(_env_file=None, cors_origins=["*"], cors_allow_credentials=True).problems()
    assert problems and all(p.severity == "warning" for p in problems)


def test_production_refuses_to_start_on_unsafe_settings(tmp_path):
    """create_app in production with unsafe settings refuses to build the app."""
    settings = Settings(_env_file=None, **{**SAFE, "crypto": {}, "data_dir": tmp_path})
    with pytest.raises(SystemExit, match="unsafe configuration: BASTION_CRYPTO__KEYS"):
        create_app(settings)


def test_observability_sent_in_clear_or_at_full_ratio_is_a_warning():
    """A Sentry DSN or an OTLP endpoint with headers over plain http to another host, and a production sample
    ratio above 0.5, are named (as warnings); local collectors and https are fine."""

    def named(**override) -> set[str]:
        return {p.setting for p in Settings(_env_file=None, **{**SAFE, **override}).problems()}

    assert "BASTION_SENTRY_DSN" in named(sentry_dsn="http://key@sentry.example.com/1")
    assert "BASTION_SENTRY_DSN" not in named(sentry_dsn="https://key@o1.ingest.sentry.io/1")
    clear = {"endpoint": "http://collector.example.com:4318", "headers": {"x-api-key": "k"}}
    assert "BASTION_OTEL__ENDPOINT" in named(otel=clear)
    assert "BASTION_OTEL__ENDPOINT" not in named(otel={**clear, "endpoint": "http://127.0.0.1:4318"})
    assert "BASTION_OTEL__SAMPLE_RATIO" in named(otel={"endpoint": "https://c.example.com", "sample_ratio": 1.0})
    assert "BASTION_OTEL__SAMPLE_RATIO" not in named(otel={"endpoint": "https://c.example.com", "sample_ratio": 0.1})
