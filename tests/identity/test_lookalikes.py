"""Look-alike addresses: domains mapped by UTS 46, mixed scripts refused, confusables of an existing account
refused (the fullwidth and Cyrillic owner@localhost of the attack report)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bastion.identity.errors import InvalidAccountData
from bastion.identity.validation import look_alikes, normalise_email
from tests.conftest import serve
from tests.identity.conftest import PASSWORD, register

FULLWIDTH_L = "\uff4c"
CYRILLIC_O = "\u043e"
CYRILLIC_A, CYRILLIC_ER, PALOCHKA, CYRILLIC_IE = "\u0430", "\u0440", "\u04cf", "\u0435"


def test_uts46_maps_fullwidth_to_ascii() -> None:
    assert normalise_email(f"Owner@{FULLWIDTH_L}ocalhost") == "owner@localhost"
    assert normalise_email("a@B\u00fccher.de") == "a@b\u00fccher.de"  # a real IDN stays as it is


def test_a_mixed_script_domain_is_refused() -> None:
    with pytest.raises(InvalidAccountData, match="mixes scripts"):
        normalise_email(f"owner@l{CYRILLIC_O}calhost")


def test_look_alikes_of_a_single_script_domain() -> None:
    """An all-Cyrillic apple.com is single-script, but its ASCII look-alikes include apple.com."""
    cyrillic_apple = f"{CYRILLIC_A}{CYRILLIC_ER}{CYRILLIC_ER}{PALOCHKA}{CYRILLIC_IE}.com"
    assert "a@apple.com" in look_alikes(normalise_email(f"a@{cyrillic_apple}"))
    assert look_alikes("a@example.com") == []


async def test_look_alike_accounts_are_refused(identity_app: Callable[..., Any]) -> None:
    """On SQLite and PostgreSQL: the fullwidth owner@localhost is the owner's own address (409 taken), the
    Cyrillic-o one is 422, an all-Cyrillic look-alike of an existing account is 422; a real IDN registers."""
    async with serve(identity_app(identity={"registration": "open"})) as http:
        await register(http, "ada@apple.com")
        cyrillic_apple = f"{CYRILLIC_A}{CYRILLIC_ER}{CYRILLIC_ER}{PALOCHKA}{CYRILLIC_IE}.com"
        answers = {}
        for name, email in {
            "fullwidth": f"ada@app{FULLWIDTH_L}e.com",
            "mixed": f"ada@appl{CYRILLIC_IE}.com",
            "confusable": f"ada@{cyrillic_apple}",
        }.items():
            response = await http.post("/auth/register", json={"email": email, "password": PASSWORD, "mode": "token"})
            answers[name] = (response.status_code, response.json()["code"])
        assert answers["fullwidth"] == (409, "EMAIL_TAKEN")
        assert answers["mixed"][0] == 422 and answers["confusable"][0] == 422
        await register(http, "ada@b\u00fccher.de")
