"""The storage protocol of the secrets module, with the records it passes around.

Every backend makes each operation atomic by itself (a conditional ``UPDATE … RETURNING`` in one
transaction on SQL, one Lua script on Redis), never with a lock held by the caller, so the guarantees
hold across workers and instances:

* ``claim`` takes one view or nothing: of any number of concurrent claims of a secret with N views
  left, exactly N succeed; the one that takes the last view also deletes the ciphertext;
* ``create`` refuses, without storing anything, when the total-bytes cap or the creator's live-secret
  cap would be passed (:class:`StorageFull`, :class:`LiveLimitReached`);
* nothing expired, burned or fully viewed is ever returned by ``metadata`` or ``claim``.

Times are epoch milliseconds, always passed in by the caller (one clock, which tests control).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal, Protocol

EventKind = Literal["created", "viewed", "burned", "expired"]


@dataclass(frozen=True, slots=True)
class NewSecret:
    id: str
    ciphertext: bytes
    client_encrypted: bool
    passphrase_hash: str | None
    max_views: int
    created_at_ms: int
    expires_at_ms: int
    owner_id: str | None
    quota_key: str
    """Whose live-secret cap this counts against: ``u:<user>`` or ``c:<keyed hash of the client>``."""
    delete_token_hash: bytes
    creator_client: str | None
    """Coarse client for the "created" audit event."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_total_bytes: int
    max_live: int
    """Live secrets allowed for the new secret's ``quota_key``."""


@dataclass(frozen=True, slots=True)
class LiveSecret:
    id: str
    created_at_ms: int
    expires_at_ms: int
    views_remaining: int
    max_views: int
    client_encrypted: bool
    passphrase_hash: str | None


@dataclass(frozen=True, slots=True)
class Claim:
    ciphertext: bytes
    views_remaining: int
    client_encrypted: bool


class Refusal(enum.Enum):
    GONE = "gone"
    """Unknown, expired, burned or out of views."""
    NEEDS_PASSPHRASE = "needs-passphrase"  # noqa: S105 - a state, not a password
    """Claimed without a checked passphrase, but the secret has one: nothing was consumed."""


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    """Backends store ``created``, ``viewed`` and ``burned``; ``expired`` is derived from the receipt."""
    at_ms: int
    client: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the creator may see of a secret, live or not, until the audit retention ends."""

    id: str
    created_at_ms: int
    expires_at_ms: int
    max_views: int
    owner_id: str | None
    delete_token_hash: bytes
    client_encrypted: bool
    requires_passphrase: bool
    events: list[Event]


class SecretBackend(Protocol):
    name: str

    async def create(self, secret: NewSecret, limits: Limits) -> None:
        """Store ``secret`` and its "created" event, or raise StorageFull / LiveLimitReached."""

    async def metadata(self, secret_id: str, now_ms: int) -> LiveSecret | None:
        """The live secret's metadata (never consumes a view), or None."""

    async def claim(
        self, secret_id: str, now_ms: int, *, passphrase_checked: bool, client: str | None
    ) -> Claim | Refusal:
        """Take one view atomically and record a "viewed" event. Unless ``passphrase_checked``, a secret
        with a passphrase is refused with NEEDS_PASSPHRASE and nothing is consumed."""

    async def burn(self, secret_id: str, now_ms: int, *, client: str | None) -> bool:
        """Delete a live secret's ciphertext now and record "burned"; False if it was not live."""

    async def receipt(self, secret_id: str) -> Receipt | None: ...

    async def owned(self, owner_quota_key: str, now_ms: int, limit: int) -> list[LiveSecret]:
        """The live secrets counted against ``owner_quota_key``, newest first."""

    async def purge(self, now_ms: int, retention_ms: int) -> int:
        """Drop expired ciphertexts, forget secrets past the audit retention, and true up the byte count;
        returns how many ciphertexts were dropped."""

    async def stored_bytes(self) -> int:
        """Bytes counted against the total cap right now."""

    async def close(self) -> None: ...
