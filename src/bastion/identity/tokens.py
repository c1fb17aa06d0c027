"""The credentials identity hands out, and how each is checked.

* **Access tokens**: JWTs (PyJWT), HS256 only, with ``typ: at+jwt``, issuer, audience, ``exp``, ``iat``,
  ``sub`` (user id) and ``sid`` (session id). The algorithm is pinned on decode, so ``alg: none`` and
  key-confusion tokens (an RS/ES/other-HS algorithm in the header) are refused; the ``kid`` picks one of
  the configured keys (the newest signs, all verify, so keys rotate without signing anyone out).
* **Opaque tokens** (refresh tokens ``bsr_…``, API keys ``bsk_<id>_<secret>``, invites ``bsi_…``): 256 bits
  from ``secrets``; only their SHA-256 digest is stored. A slow hash buys nothing for random secrets.
* **CSRF tokens**: ``<nonce>.<HMAC(key, session id, nonce)>``, sent as a readable cookie and echoed in a
  header (signed double submit), so a token planted by a sibling domain does not match the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ALGORITHM = "HS256"
TOKEN_TYPE = "at+jwt"  # noqa: S105 - the JWT "typ" of access tokens (RFC 9068), not a secret
AUDIENCE = "bastion"
API_KEY_PREFIX = "bsk_"
REFRESH_PREFIX = "bsr_"
INVITE_PREFIX = "bsi_"
_KEY_ID_LENGTH = 12
_API_KEY = re.compile(r"^bsk_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "iss", "aud"]


def derive_keys(masters: Mapping[str, bytes], active: str) -> list[bytes]:
    """Access-token keys derived from encryption master keys (HKDF, own label): the active one first."""
    order = [active, *(kid for kid in masters if kid != active)]
    return [
        HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"bastion/identity/jwt/v1").derive(masters[kid])
        for kid in order
    ]


def digest(token: str | bytes) -> str:
    """SHA-256 hex digest of an opaque token: what the database stores and looks up."""
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).hexdigest()


def new_opaque(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str]:
    """A fresh ``(key id, full key)``; the id is the key's short visible prefix, ``bsk_<id>``."""
    key_id = secrets.token_hex(6)
    return key_id, f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_api_key(token: str) -> str | None:
    """The key id of a well-formed API key, else None (no database lookup for garbage)."""
    match = _API_KEY.match(token)
    return match.group(1) if match else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """Issues and verifies access tokens and CSRF tokens under a list of keys (the first one signs)."""

    def __init__(self, keys: Iterable[bytes], *, issuer: str) -> None:
        ordered = list(keys)
        if not ordered:
            raise ValueError("at least one signing key is needed")
        self._keys = {hashlib.sha256(b"kid" + key).hexdigest()[:_KEY_ID_LENGTH]: key for key in ordered}
        self._active = next(iter(self._keys))
        self._csrf_keys = [hmac.new(key, b"bastion/identity/csrf/v1", hashlib.sha256).digest() for key in ordered]
        self.issuer = issuer

    def issue(self, *, user_id: str, session_id: str, ttl: int, now: float | None = None) -> tuple[str, int]:
        """A signed access token and its expiry (epoch seconds)."""
        issued = int(now if now is not None else time.time())
        expires = issued + ttl
        claims = {"iss": self.issuer, "aud": AUDIENCE, "sub": user_id, "sid": session_id, "iat": issued, "exp": expires}
        token = jwt.encode(
            claims, self._keys[self._active], algorithm=ALGORITHM, headers={"kid": self._active, "typ": TOKEN_TYPE}
        )
        return token, expires

    def verify(self, token: str, *, allow_expired: bool = False) -> dict[str, Any]:
        """The claims of a valid token; raises ``jwt.InvalidTokenError`` (or a subclass) otherwise.
        ``allow_expired``: accept a token past its ``exp`` (its signature, issuer and audience still checked),
        for renewing a live session's cookie (sliding.py)."""
        header = jwt.get_unverified_header(token)
        key = self._keys.get(str(header.get("kid", "")))
        if key is None or header.get("typ") != TOKEN_TYPE or header.get("alg") != ALGORITHM:
            raise jwt.InvalidTokenError("unexpected token header")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=self.issuer,
            options={"require": _REQUIRED_CLAIMS, "verify_exp": not allow_expired},
        )
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("sid"), str):
            raise jwt.InvalidTokenError("malformed subject")
        return claims

    def csrf_token(self, session_id: str) -> str:
        nonce = _b64(secrets.token_bytes(16))
        return f"{nonce}.{self._csrf_mac(self._csrf_keys[0], session_id, nonce)}"

    def csrf_valid(self, session_id: str, token: str) -> bool:
        nonce, _, mac = token.partition(".")
        if not nonce or not mac or len(token) > 128:
            return False
        return any(hmac.compare_digest(mac, self._csrf_mac(key, session_id, nonce)) for key in self._csrf_keys)

    @staticmethod
    def _csrf_mac(key: bytes, session_id: str, nonce: str) -> str:
        return _b64(hmac.new(key, f"{session_id}.{nonce}".encode(), hashlib.sha256).digest())
