"""The JSON of the secrets API (msgspec structs), apart from the storage records of ``backends.base``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

Passphrase = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class CreateSecretRequest(msgspec.Struct, forbid_unknown_fields=True):
    secret: Annotated[str, msgspec.Meta(min_length=1)]
    """The plaintext, or with ``client_encrypted`` the browser's AES-GCM output: base64url (no padding) of
    IV (12 bytes) + ciphertext + tag (16 bytes). Stored exactly as sent (never cleaned or trimmed)."""
    ttl_seconds: int | None = None
    max_views: int = 1
    passphrase: Passphrase | None = None
    client_encrypted: bool = False


class CreatedSecret(msgspec.Struct):
    id: str
    url: str
    """The page that reveals it; a browser-encrypted secret's key goes after ``#`` (added by the client)."""
    expires_at: dt.datetime
    views_remaining: int
    delete_token: str
    """Shown once: burns the secret early (``DELETE`` with ``X-Delete-Token``) and reads its audit trail."""


class SecretMetadata(msgspec.Struct):
    id: str
    exists: bool
    created_at: dt.datetime
    expires_at: dt.datetime
    views_remaining: int
    requires_passphrase: bool
    client_encrypted: bool


class RevealRequest(msgspec.Struct, forbid_unknown_fields=True):
    passphrase: Passphrase | None = None


class RevealedSecret(msgspec.Struct):
    secret: str
    """The plaintext, or a browser-encrypted secret's ciphertext exactly as it was sent."""
    views_remaining: int
    client_encrypted: bool


class OwnedSecret(msgspec.Struct):
    id: str
    created_at: dt.datetime
    expires_at: dt.datetime
    views_remaining: int
    max_views: int
    requires_passphrase: bool
    client_encrypted: bool


class AuditEvent(msgspec.Struct):
    event: Literal["created", "viewed", "burned", "expired"]
    at: dt.datetime
    client: str | None = None
    """Coarse network of the client: an IPv4 /24 or an IPv6 /48."""


class SecretAudit(msgspec.Struct):
    id: str
    state: Literal["live", "viewed", "burned", "expired"]
    created_at: dt.datetime
    expires_at: dt.datetime
    max_views: int
    views_remaining: int
    events: list[AuditEvent]
