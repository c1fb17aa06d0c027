"""Billing's settings: offers from the environment, and what check-config says about them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bastion.billing.settings import BillingSettings
from bastion.core.module import check_config
from bastion.modules import MODULES
from bastion.settings import Settings


def test_offers_come_from_nested_variables_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """``BASTION_BILLING__OFFERS__PRO__PRICE`` and a JSON ``BASTION_BILLING__OFFERS`` both configure offers."""
    monkeypatch.setenv("BASTION_BILLING__OFFERS", '{"pro": {"price": "price_a"}}')
    monkeypatch.setenv("BASTION_BILLING__OFFERS__PRO_YEARLY__PRICE", "price_b")
    offers = Settings(_env_file=None).billing.offers
    assert {name: offer.price for name, offer in offers.items()} == {"pro": "price_a", "pro_yearly": "price_b"}
    assert {offer.plan for offer in offers.values()} == {"pro"}


def test_a_price_no_offer_sells_grants_free() -> None:
    """The plan of a price comes only from the configured offers."""
    settings = BillingSettings(offers={"pro": {"price": "price_a"}})
    assert (settings.price_plan("price_a"), settings.price_plan("price_other"), settings.price_plan(None)) == (
        "pro",
        "free",
        "free",
    )


def test_billing_without_offers_is_not_a_problem(make_settings: Callable[..., Settings]) -> None:
    """Billing not set up: check-config has nothing to say about it."""
    problems = check_config(make_settings(), MODULES)
    assert not [p for p in problems if p.setting.startswith("BASTION_BILLING")]


def test_offers_without_keys_are_errors_in_production(make_settings: Callable[..., Settings]) -> None:
    """Offers but no Stripe key, webhook secret or public URL: errors in production, warnings otherwise."""
    offers = {"offers": {"pro": {"price": "price_a"}}}
    development = check_config(make_settings(billing=offers), MODULES)
    assert {p.setting: p.severity for p in development if p.setting.startswith("BASTION_BILLING")} == {
        "BASTION_BILLING__SECRET_KEY": "warning",
        "BASTION_BILLING__WEBHOOK_SECRET": "warning",
    }
    production = BillingSettings(**offers).problems(production=True)
    assert {p.setting: p.severity for p in production} == {
        "BASTION_BILLING__SECRET_KEY": "error",
        "BASTION_BILLING__WEBHOOK_SECRET": "error",
        "BASTION_BILLING__PUBLIC_URL": "error",
    }


def test_a_default_offer_that_does_not_exist_is_an_error() -> None:
    """A typo in DEFAULT_OFFER is caught by check-config, not by the first checkout."""
    settings = BillingSettings(
        offers={"pro": {"price": "price_a"}},
        default_offer="gold",
        secret_key="sk_test_x",
        webhook_secret="whsec_x",
    )
    assert [(p.setting, p.severity) for p in settings.problems(production=False)] == [
        ("BASTION_BILLING__DEFAULT_OFFER", "error")
    ]
