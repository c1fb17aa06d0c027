"""What identity accepts as input, in canonical form: email addresses, logins, redirect targets."""

from __future__ import annotations

import itertools
import re
import unicodedata
from typing import Any

import idna

from bastion.identity.errors import InvalidAccountData

_EMAIL_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOGIN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,38}$")


def normalise_email(raw: str) -> str:
    """The canonical form of an address: NFC, trimmed, lower-cased, syntactically valid, its domain mapped by
    UTS 46 (so ``owner@`` + a fullwidth ``l`` (U+FF4C) + ``ocalhost`` is ``owner@localhost``) and in one script
    per label (so ``owner@l`` + a Cyrillic ``o`` (U+043E) + ``calhost`` is refused).

    Hand-rolled (a pragmatic subset of RFC 5321: dot-atom ASCII local part, IDNA domain): email-validator would
    be a new dependency for a dozen lines, and its deliverability (DNS) checks do not belong on a login path.
    """
    text = unicodedata.normalize("NFC", raw).strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or len(local) > 64 or not _EMAIL_LOCAL.match(local):
        raise InvalidAccountData("email", "This is not a valid email address.")
    try:
        ascii_domain = idna.encode(domain, uts46=True, std3_rules=True).decode("ascii")
        domain = idna.decode(ascii_domain)
    except (idna.IDNAError, UnicodeError):
        raise InvalidAccountData("email", "This is not a valid email address.") from None
    if len(ascii_domain) > 253 or not all(_DOMAIN_LABEL.match(label) for label in ascii_domain.split(".")):
        raise InvalidAccountData("email", "This is not a valid email address.")
    if not domain.isascii() and any(_confusables().is_mixed_script(label) for label in domain.split(".")):
        raise InvalidAccountData("email", "The domain mixes scripts (such as Latin and Cyrillic) in one label.")
    return f"{local}@{domain}"


def _confusables() -> Any:
    """confusable_homoglyphs' tables, loaded with the first non-ASCII domain: they take 12.6 MB of memory, which
    a worker that only ever sees ASCII addresses should not hold (measured 2026-12-03)."""
    from confusable_homoglyphs import confusables  # type: ignore[import-untyped]

    return confusables


def look_alikes(address: str, most: int = 32) -> list[str]:
    """The ASCII addresses ``address`` could be mistaken for: each character of its domain that looks like an
    ASCII letter or digit replaced by one it looks like (a Cyrillic ``a`` (U+0430) by ``a``; a palochka (U+04CF)
    by ``l``, ``i`` or ``1``), at most ``most`` of them; empty for an ASCII domain."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return []
    confusables = _confusables()
    choices: list[list[str]] = []
    for ch in domain:
        similar: list[str] = []
        for form in {ch, ch.upper()} if not ch.isascii() else ():  # the upper case has its own look-alikes
            for found in confusables.is_confusable(form, preferred_aliases=["latin"], greedy=True) or []:
                similar += [g["c"].lower() for g in found["homoglyphs"] if g["c"].isascii() and g["c"].isalnum()]
        choices.append(sorted(set(similar))[:3] or [ch])
    return [f"{local}@{''.join(combo)}" for combo in itertools.islice(itertools.product(*choices), most)]


def loose_email(raw: str) -> str:
    """An address as a sign-in attempt is keyed on: canonical when valid, else only folded (never an error,
    so a malformed address costs the same work as a wrong password)."""
    try:
        return normalise_email(raw)
    except InvalidAccountData:
        return unicodedata.normalize("NFC", raw).strip().lower()


def normalise_login(raw: str) -> str:
    login = raw.strip().lower()
    if not _LOGIN.match(login):
        raise InvalidAccountData(
            "login", "1-39 characters: letters, digits, '-' and '_', starting with a letter or digit."
        )
    return login


def login_from(hint: str | None) -> str:
    """A login suggested by a provider login or an email's local part, made valid."""
    text = re.sub(r"[^a-z0-9_-]+", "-", (hint or "").lower()).strip("-_")[:39]
    return text if text and _LOGIN.match(text) else "user"


def safe_next(value: str | None, default: str) -> str:
    """A post-sign-in redirect target: only a local path (no scheme, no ``//host``), else the default."""
    if not value or len(value) > 512 or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 0x20 for ch in value):
        return default
    return value
