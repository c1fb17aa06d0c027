"""Identity settings: what production refuses, and what development only warns about."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.app import create_app
from bastion.core.module import check_config
from bastion.modules import MODULES
from bastion.settings import Settings

SAFE: dict[str, Any] = {
    "env": "production",
    "crypto": {"keys": {"k": "A" * 43 + "="}, "active_key_id": "k"},
    "cron_secret": "kY3v9QmTz2LwX8pR4nB7cD1fH6jG5sAe",
    "allowed_hosts": ["api.example.com"],
    "security_contact": "mailto:s@example.com",
}
PROVIDER = {"client_id": "id", "client_secret": "secret", "preset": "github"}


def _errors(**identity: Any) -> dict[str, str]:
    settings = Settings(_env_file=None, **SAFE, identity=identity)
    return {p.setting: p.message for p in check_config(settings, MODULES) if p.severity == "error"}


def test_safe_production_identity_settings_have_no_errors():
    """Without a JWT secret the signing keys derive from the configured master keys: nothing to fix."""
    assert _errors() == {}
    assert (
        _errors(jwt_secret="x" * 48, oauth_providers={"github": PROVIDER}, public_url="https://app.example.com") == {}
    )


@pytest.mark.parametrize(
    ("identity", "setting"),
    [
        ({"jwt_secret": "too-short"}, "BASTION_IDENTITY__JWT_SECRET"),
        ({"jwt_secret": "x" * 48, "jwt_previous_secrets": ["short"]}, "BASTION_IDENTITY__JWT_PREVIOUS_SECRETS"),
        ({"services": {"cron": {"secret": "guessable"}}}, "BASTION_IDENTITY__SERVICES"),
        ({"cookie_secure": False}, "BASTION_IDENTITY__COOKIE_SECURE"),
        ({"oauth_providers": {"github": PROVIDER}}, "BASTION_IDENTITY__PUBLIC_URL"),
        (
            {
                "oauth_providers": {
                    "x": {
                        **PROVIDER,
                        "preset": "custom",
                        "authorize_url": "http://idp.example/a",
                        "token_url": "https://idp.example/t",
                        "userinfo_url": "https://idp.example/u",
                    }
                },
                "public_url": "https://app.example.com",
            },
            "BASTION_IDENTITY__OAUTH_PROVIDERS",
        ),
    ],
)
def test_each_unsafe_identity_setting_is_named(identity, setting):
    """Every unsafe identity setting in production is an error naming the variable to fix."""
    assert setting in _errors(**identity)


def test_production_refuses_to_start_with_insecure_cookies(tmp_path):
    """create_app in production with non-Secure session cookies refuses to build."""
    settings = Settings(_env_file=None, **{**SAFE, "data_dir": tmp_path}, identity={"cookie_secure": False})
    with pytest.raises(SystemExit, match="unsafe configuration"):
        create_app(settings)


def test_provider_presets_fill_the_endpoints():
    """A github or google preset needs only the client credentials."""
    settings = Settings(
        _env_file=None, identity={"oauth_providers": {"github": PROVIDER, "google": {**PROVIDER, "preset": "google"}}}
    )
    github, google = settings.identity.oauth_providers["github"], settings.identity.oauth_providers["google"]
    assert github.token_url == "https://github.com/login/oauth/access_token" and github.emails_url
    assert google.userinfo_url.startswith("https://openidconnect.googleapis.com/")
    assert google.email_verified_field == "email_verified" and github.email_verified_field is None


def test_a_custom_provider_needs_its_endpoints():
    """A custom provider without endpoints is a validation error at start-up."""
    with pytest.raises(ValueError, match="authorize_url"):
        Settings(_env_file=None, identity={"oauth_providers": {"x": {"client_id": "a", "client_secret": "b"}}})


def test_providers_come_from_the_environment(monkeypatch):
    """BASTION_IDENTITY__OAUTH_PROVIDERS__<NAME>__<FIELD> configures a provider."""
    monkeypatch.setenv("BASTION_IDENTITY__OAUTH_PROVIDERS__GITHUB__PRESET", "github")
    monkeypatch.setenv("BASTION_IDENTITY__OAUTH_PROVIDERS__GITHUB__CLIENT_ID", "Iv1.abc")
    monkeypatch.setenv("BASTION_IDENTITY__OAUTH_PROVIDERS__GITHUB__CLIENT_SECRET", "shh")
    monkeypatch.setenv("BASTION_IDENTITY__PLANS__PRO__API_KEYS", "99")
    settings = Settings(_env_file=None)
    assert settings.identity.oauth_providers["github"].client_id == "Iv1.abc"
    assert settings.identity.plans.pro.api_keys == 99 and settings.identity.plans.pro.history_days == 365
