"""One-time secrets as plain async Python: create, read metadata, reveal, burn, audit, purge.

    service = SecretsService(backend, keyring=platform.keyring, store=ctx.store, settings=settings.secrets)
    created = await service.create(CreateSecretRequest(secret="hunter2"), caller, base_url="https://x.example")
    revealed = await service.reveal(created.id, None, caller)          # consumes one view

What the server keeps: the secret encrypted under a key of its own (``keyring``, context
``secret:<id>``), an argon2id hash of the passphrase, a SHA-256 of the delete token, and the audit
events. A browser-encrypted secret is stored as the browser's ciphertext (encrypted once more at rest);
its key stays in the URL fragment and never reaches the server.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import hmac
import ipaddress
import re
import secrets as stdlib_secrets  # the standard library's module, not this package
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.core import db, metrics
from bastion.core.crypto import DecryptionError, Keyring
from bastion.core.errors import DependencyUnavailable, validation_errors
from bastion.core.logging import get_logger
from bastion.core.passwords import Passwords
from bastion.core.resilience import Bulkhead, CircuitBreaker, SingleFlight
from bastion.core.stores.base import Store, StoreUnavailable
from bastion.secrets.backends.base import Claim, Event, Limits, LiveSecret, NewSecret, Receipt, Refusal, SecretBackend
from bastion.secrets.errors import (
    AnonymousCreateOff,
    InvalidSecret,
    PassphraseInvalid,
    PassphraseRequired,
    SecretKeyUnavailable,
    SecretLocked,
    SecretNotFound,
)
from bastion.secrets.schemas import (
    AuditEvent,
    CreatedSecret,
    CreateSecretRequest,
    OwnedSecret,
    RevealedSecret,
    SecretAudit,
    SecretMetadata,
)
from bastion.secrets.settings import SecretsSettings

T = TypeVar("T")
log = get_logger("bastion.secrets")
REVEAL_PAGE = "/s/"
"""Where the page that reveals a secret lives (served by ``bastion.web``): ``/s/<id>``."""
_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_GCM_OVERHEAD = 12 + 16  # IV + tag of the browser's AES-GCM
_events = metrics.counter("secrets_events_total", "Secret lifecycle events", ("event",))


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the client address, the rate-limit key, and the owning user when signed in."""

    client: str
    rate_key: str
    owner_id: str | None = None


@functools.lru_cache(maxsize=4096)
def coarse_client(client: str) -> str | None:
    """The client's network as kept in audit events: IPv4 /24, IPv6 /48 (None if not an address).
    Cached: building the network costs 17 us, about 1 % of a reveal, and clients come back."""
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _ms_to_dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _is_outage(exc: BaseException) -> bool:
    return isinstance(exc, StoreUnavailable) or db.unavailable(exc) is not None


class SecretsService:
    def __init__(
        self,
        backend: SecretBackend,
        *,
        keyring: Keyring,
        store: Store,
        settings: SecretsSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.keyring = keyring
        self.store = store
        self.settings = settings
        self.clock = clock
        # argon2id is meant to be costly: bound how many run at once so a flood of wrong passphrases
        # cannot take every core and argon2_memory_kib per attempt (beyond 64 waiting, or 2 s: 503).
        self.passwords = Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            gate=Bulkhead(
                "secrets:argon2", max_concurrent=settings.argon2_max_concurrent, max_waiting=64, wait_timeout=2.0
            ),
        )
        self.breaker = CircuitBreaker(
            f"secrets-{backend.name}", failure_threshold=5, reset_timeout=5.0, is_failure=_is_outage
        )
        self.flight: SingleFlight[LiveSecret | None] = SingleFlight()
        master = keyring.keys[keyring.active]
        self._quota_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"bastion secrets: client quota"
        ).derive(master)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _stored(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Call the backend through the circuit breaker: an outage fails fast (503) instead of piling up."""
        async with self.breaker:
            return await operation()

    # -- create ------------------------------------------------------------------------------------

    async def create(self, request: CreateSecretRequest, caller: Caller, *, base_url: str) -> CreatedSecret:
        if caller.owner_id is None and not self.settings.allow_anonymous:
            raise AnonymousCreateOff("Anonymous creation is turned off here; sign in or use an API key.")
        ttl, payload = self._validate(request, signed_in=caller.owner_id is not None)
        passphrase_hash = await self.passwords.hash(request.passphrase) if request.passphrase is not None else None
        secret_id, delete_token = stdlib_secrets.token_urlsafe(16), stdlib_secrets.token_urlsafe(24)
        now = self.now_ms()
        record = NewSecret(
            id=secret_id,
            ciphertext=self.keyring.encrypt(payload, context=self._context(secret_id)),
            client_encrypted=request.client_encrypted,
            passphrase_hash=passphrase_hash,
            max_views=request.max_views,
            created_at_ms=now,
            expires_at_ms=now + ttl * 1000,
            owner_id=caller.owner_id,
            quota_key=self._quota(caller),
            delete_token_hash=_digest(delete_token),
            creator_client=coarse_client(caller.client),
        )
        limit = self.settings.max_live_per_user if caller.owner_id else self.settings.max_live_per_client
        await self._stored(lambda: self.backend.create(record, Limits(self.settings.max_total_bytes, limit)))
        _events.labels("created").inc()
        return CreatedSecret(
            id=secret_id,
            url=f"{base_url.rstrip('/')}{REVEAL_PAGE}{secret_id}",
            expires_at=_ms_to_dt(record.expires_at_ms),
            views_remaining=request.max_views,
            delete_token=delete_token,
        )

    def _validate(self, request: CreateSecretRequest, *, signed_in: bool) -> tuple[int, bytes]:
        """The TTL and the bytes to store, or InvalidSecret listing every field out of bounds."""
        s = self.settings
        max_ttl = s.max_ttl_seconds if signed_in else s.max_ttl_anonymous_seconds
        ttl = request.ttl_seconds if request.ttl_seconds is not None else min(s.default_ttl_seconds, max_ttl)
        problems: list[dict[str, str]] = []
        if not s.min_ttl_seconds <= ttl <= max_ttl:
            problems.append({"field": "ttl_seconds", "message": f"must be {s.min_ttl_seconds} to {max_ttl} seconds"})
        if not 1 <= request.max_views <= s.max_views:
            problems.append({"field": "max_views", "message": f"must be 1 to {s.max_views}"})
        payload = self._payload(request, problems)
        if problems:
            raise InvalidSecret("The secret cannot be stored as asked.", extra=validation_errors(problems))
        return ttl, payload

    def _payload(self, request: CreateSecretRequest, problems: list[dict[str, str]]) -> bytes:
        limit = self.settings.max_secret_bytes
        if not request.client_encrypted:
            payload = request.secret.encode()
            if len(payload) > limit:
                problems.append({"field": "secret", "message": f"must be at most {limit} bytes of UTF-8"})
            return payload
        # Browser ciphertext: decoded and checked for shape only; the server cannot (and must not) open it.
        if len(request.secret) > (limit + _GCM_OVERHEAD) * 4 // 3 + 4 or not _B64URL.match(request.secret):
            problems.append({"field": "secret", "message": "must be base64url AES-GCM output within the size limit"})
            return b""
        try:
            payload = base64.urlsafe_b64decode(request.secret + "=" * (-len(request.secret) % 4))
        except (binascii.Error, ValueError):
            payload = b""
        if not _GCM_OVERHEAD < len(payload) <= limit + _GCM_OVERHEAD:
            problems.append({"field": "secret", "message": "must be base64url AES-GCM output within the size limit"})
        return payload

    def _quota(self, caller: Caller) -> str:
        """Whose live-secret cap a new secret counts against: the user, or the anonymous client's address
        (an IPv6 client by its /64, which one host can rotate through), kept only as a keyed hash."""
        if caller.owner_id is not None:
            return "u:" + caller.owner_id
        name = caller.client  # not an address (a test client, a unix socket): its name is the key
        if ":" in name:
            try:
                name = str(ipaddress.ip_network(f"{ipaddress.ip_address(name)}/64", strict=False))
            except ValueError:
                name = caller.client
        return "c:" + hmac.new(self._quota_key, name.encode(), hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def _context(secret_id: str) -> bytes:
        return b"secret:" + secret_id.encode()

    # -- passphrases -------------------------------------------------------------------------------

    def _lock_key(self, secret_id: str, caller: Caller) -> str:
        return "lock:" + hashlib.sha256(f"{secret_id}\n{caller.rate_key}".encode()).hexdigest()

    async def _check_lock(self, key: str) -> None:
        try:
            attempts = await self.store.get(key)
            locked = attempts is not None and int(attempts) >= self.settings.passphrase_attempts
            left = await self.store.ttl(key) if locked else None
        except StoreUnavailable as exc:
            raise DependencyUnavailable("Passphrase attempts cannot be counted right now.", retry_after=5) from exc
        if left is not None:
            _events.labels("locked").inc()
            raise SecretLocked(
                "Too many wrong passphrases for this secret from this client.",
                retry_after=left or self.settings.lockout_seconds,
            )

    async def _wrong_passphrase(self, key: str) -> None:
        limit, lockout = self.settings.passphrase_attempts, self.settings.lockout_seconds
        try:
            attempts = await self.store.increment(key, ttl=lockout)
            if attempts >= limit:  # the lock runs for the full period from the attempt that set it
                await self.store.set(key, str(attempts).encode(), ttl=lockout)
        except StoreUnavailable as exc:
            raise DependencyUnavailable("Passphrase attempts cannot be counted right now.", retry_after=5) from exc
        _events.labels("passphrase_wrong").inc()
        raise PassphraseInvalid(
            "Wrong passphrase; nothing was consumed.", extra={"attempts_left": max(0, limit - attempts)}
        )

    # -- reading -----------------------------------------------------------------------------------

    async def _live(self, secret_id: str) -> LiveSecret | None:
        """Metadata of a live secret. Concurrent reads of one id share a single backend call."""
        now = self.now_ms()
        return await self.flight.do(secret_id, lambda: self._stored(lambda: self.backend.metadata(secret_id, now)))

    async def metadata(self, secret_id: str) -> SecretMetadata:
        """Never consumes anything: link previews and mail scanners may call it freely."""
        found = await self._live(secret_id) if _ID.match(secret_id) else None
        if found is None:
            raise SecretNotFound
        return SecretMetadata(
            id=found.id,
            exists=True,
            created_at=_ms_to_dt(found.created_at_ms),
            expires_at=_ms_to_dt(found.expires_at_ms),
            views_remaining=found.views_remaining,
            requires_passphrase=found.passphrase_hash is not None,
            client_encrypted=found.client_encrypted,
        )

    async def reveal(self, secret_id: str, passphrase: str | None, caller: Caller) -> RevealedSecret:
        """Consume one view and return the secret. The claim is made (and stored) before this returns, so
        a response lost on the way costs a view but can never give the secret to two callers."""
        if not _ID.match(secret_id):
            raise SecretNotFound
        client = coarse_client(caller.client)
        outcome: Claim | Refusal
        if passphrase is None:
            outcome = await self._stored(
                lambda: self.backend.claim(secret_id, self.now_ms(), passphrase_checked=False, client=client)
            )
            if outcome is Refusal.NEEDS_PASSPHRASE:
                raise PassphraseRequired("Send the passphrase to reveal this secret.")
        else:
            await self._check_passphrase(secret_id, passphrase, caller)
            outcome = await self._stored(
                lambda: self.backend.claim(secret_id, self.now_ms(), passphrase_checked=True, client=client)
            )
        if not isinstance(outcome, Claim):
            raise SecretNotFound
        _events.labels("revealed").inc()
        try:
            plaintext = self.keyring.decrypt(outcome.ciphertext, context=self._context(secret_id))
        except DecryptionError:
            raise SecretKeyUnavailable("Sealed with a master key this server lacks (BASTION_CRYPTO__KEYS).") from None
        text = (
            base64.urlsafe_b64encode(plaintext).rstrip(b"=").decode()
            if outcome.client_encrypted
            else plaintext.decode()
        )
        return RevealedSecret(
            secret=text, views_remaining=outcome.views_remaining, client_encrypted=outcome.client_encrypted
        )

    async def _check_passphrase(self, secret_id: str, passphrase: str, caller: Caller) -> None:
        lock = self._lock_key(secret_id, caller)
        await self._check_lock(lock)
        found = await self._live(secret_id)
        if found is None:
            raise SecretNotFound
        if found.passphrase_hash is not None and not await self.passwords.verify(found.passphrase_hash, passphrase):
            await self._wrong_passphrase(lock)

    # -- the creator's view ------------------------------------------------------------------------

    async def _receipt_for(self, secret_id: str, delete_token: str | None, caller: Caller) -> Receipt:
        """The receipt, if the caller created the secret (its owner, or holding its delete token); else the
        same 404 as for an unknown id, so a wrong token tells nothing."""
        receipt = await self._stored(lambda: self.backend.receipt(secret_id)) if _ID.match(secret_id) else None
        if receipt is None:
            raise SecretNotFound
        owner = caller.owner_id is not None and caller.owner_id == receipt.owner_id
        holder = delete_token is not None and hmac.compare_digest(_digest(delete_token), receipt.delete_token_hash)
        if not (owner or holder):
            raise SecretNotFound
        return receipt

    async def burn(self, secret_id: str, delete_token: str | None, caller: Caller) -> None:
        await self._receipt_for(secret_id, delete_token, caller)
        if not await self._stored(
            lambda: self.backend.burn(secret_id, self.now_ms(), client=coarse_client(caller.client))
        ):
            raise SecretNotFound
        _events.labels("burned").inc()

    async def audit(self, secret_id: str, delete_token: str | None, caller: Caller) -> SecretAudit:
        receipt = await self._receipt_for(secret_id, delete_token, caller)
        events = list(receipt.events)
        views_left = receipt.max_views - sum(1 for e in events if e.kind == "viewed")
        state: Literal["live", "viewed", "burned", "expired"]
        if any(e.kind == "burned" for e in events):
            state = "burned"
        elif views_left <= 0:
            state = "viewed"
        elif receipt.expires_at_ms <= self.now_ms():
            state = "expired"
            events.append(Event("expired", receipt.expires_at_ms))
        else:
            state = "live"
        return SecretAudit(
            id=receipt.id,
            state=state,
            created_at=_ms_to_dt(receipt.created_at_ms),
            expires_at=_ms_to_dt(receipt.expires_at_ms),
            max_views=receipt.max_views,
            views_remaining=max(0, views_left) if state == "live" else 0,
            events=[AuditEvent(e.kind, _ms_to_dt(e.at_ms), e.client) for e in events],
        )

    async def owned(self, owner_id: str, limit: int = 200) -> list[OwnedSecret]:
        found = await self._stored(lambda: self.backend.owned("u:" + owner_id, self.now_ms(), limit))
        return [
            OwnedSecret(
                id=s.id,
                created_at=_ms_to_dt(s.created_at_ms),
                expires_at=_ms_to_dt(s.expires_at_ms),
                views_remaining=s.views_remaining,
                max_views=s.max_views,
                requires_passphrase=s.passphrase_hash is not None,
                client_encrypted=s.client_encrypted,
            )
            for s in found
        ]

    # -- housekeeping ------------------------------------------------------------------------------

    async def purge(self) -> int:
        """Forget expired secrets and audit trails past their retention; the count (the declared job
        ``secrets.purge`` runs it, see ``module.py``)."""
        dropped = await self._stored(
            lambda: self.backend.purge(self.now_ms(), self.settings.audit_retention_seconds * 1000)
        )
        if dropped:
            _events.labels("expired").inc(dropped)
        return dropped
