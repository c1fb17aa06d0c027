"""The CSRF defences of cookie mode: an ``Origin`` of this site or an allowed one, and a signed double-submit
token (the CSRF cookie's value echoed in a header, and bound to the session by an HMAC; see tokens.py).

    csrf = Csrf(signer, settings.identity, cors_origins=settings.cors_origins)
    csrf.origin_allowed(b"https://app.example", b"app.example")      # True
    csrf.problem(sent, stored, session_id)                           # None, or why it fails
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from bastion.identity.settings import IdentitySettings
from bastion.identity.tokens import Signer


class Csrf:
    def __init__(self, signer: Signer, settings: IdentitySettings, *, cors_origins: Iterable[str]) -> None:
        self.signer = signer
        self.cookie = settings.cookie_csrf
        self.header = settings.csrf_header
        self.cors_origins = frozenset(o.rstrip("/") for o in cors_origins)

    def origin_allowed(self, origin: bytes, host: bytes) -> bool:
        """The ``Origin`` is this site (its host:port is the request's ``Host``) or a configured CORS origin."""
        text = origin.decode("latin-1").rstrip("/")
        if text in self.cors_origins:
            return True
        _, sep, netloc = text.partition("://")
        return bool(sep) and netloc.lower() == host.decode("latin-1").lower()

    @staticmethod
    def same_origin(origin: bytes, host: bytes) -> bool:
        """The ``Origin``'s host:port is the request's ``Host``: the browser says the page is this site's."""
        _, sep, netloc = origin.decode("latin-1").rstrip("/").partition("://")
        return bool(sep) and netloc.lower() == host.decode("latin-1").lower()

    def problem(self, sent: bytes | None, stored: bytes | None, session_id: str) -> str | None:
        """Why the CSRF header fails (missing, not the cookie's value, not this session's), or None."""
        if sent is None or stored is None:
            return self.missing()
        if not hmac.compare_digest(sent, stored) or not self.signer.csrf_valid(session_id, sent.decode("latin-1")):
            return "The CSRF token does not match this session."
        return None

    def missing(self) -> str:
        return f"Send the CSRF token (the {self.cookie} cookie) in the {self.header} header."

    def token(self, session_id: str) -> str:
        """A fresh CSRF token of ``session_id``."""
        return self.signer.csrf_token(session_id)

    def valid(self, session_id: str, token: str) -> bool:
        """``token`` was made for ``session_id`` with one of the current keys."""
        return self.signer.csrf_valid(session_id, token)
