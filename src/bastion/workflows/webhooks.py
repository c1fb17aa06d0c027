"""GoHighLevel webhooks: the signature checked on the raw bytes, replays refused, each delivery applied once.

Order of the checks (GHL's SDK, ``webhook-manager.ts``, minus its fail-open): ``x-ghl-signature`` present →
Ed25519 over the raw body with GHL's public key, no fallback; else ``x-wh-signature`` (RSA-SHA256, legacy) only
when ``accept_legacy_signatures`` is on; anything else — no header, no key configured, a bad signature — is
a 401. Then the payload's ``timestamp`` must be within the tolerance (GHL signs no timestamp header, so the
body's is the one there is), and its ``webhookId`` is recorded in the same transaction as what the event
changes: a redelivery is answered 200 and changes nothing.

Events: ``INSTALL`` (an agency's company connection mints the new location's tokens), ``UNINSTALL``
(the location's tokens go; its users are asked to reconnect), ``WorkflowCreate`` / ``WorkflowUpdate``
(a new version → a queued re-analysis, run by the ``workflows.reanalyse`` job, never inline).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bastion.core.db import Database
from bastion.core.errors import ValidationFailed, WebhookSignatureInvalid
from bastion.core.logging import get_logger
from bastion.workflows.errors import WebhookStale
from bastion.workflows.models import ConnectionRow, ReanalysisRow, WebhookEventRow, WorkflowRow
from bastion.workflows.settings import WorkflowsSettings

log = get_logger("bastion.workflows")
WORKFLOW_EVENTS = frozenset({"WorkflowCreate", "WorkflowUpdate"})


class Event(msgspec.Struct, frozen=True):
    type: str
    webhookId: str
    timestamp: str | int | float
    locationId: str | None = None
    companyId: str | None = None
    id: str | None = None
    workflowId: str | None = None
    name: str | None = None
    status: str | None = None
    version: int | None = None


class Verifier:
    """The signature check, keys loaded once (PEM public keys, as GHL publishes them)."""

    def __init__(self, settings: WorkflowsSettings) -> None:
        self.ed25519 = _load(settings.ghl_webhook_public_key, ed25519.Ed25519PublicKey)
        self.rsa = (
            _load(settings.ghl_webhook_legacy_rsa_key, rsa.RSAPublicKey) if settings.accept_legacy_signatures else None
        )

    def verify(self, body: bytes, headers: dict[str, str]) -> str:
        """Which scheme verified ``body``; :class:`WebhookSignatureInvalid` for every other case."""
        current, legacy = headers.get("x-ghl-signature"), headers.get("x-wh-signature")
        if current is not None:
            if self.ed25519 is None:
                raise WebhookSignatureInvalid("No GoHighLevel webhook key is configured on this server.")
            try:
                self.ed25519.verify(_b64(current), body)
            except InvalidSignature:
                raise WebhookSignatureInvalid("The x-ghl-signature does not verify.") from None
            return "ed25519"
        if legacy is not None and self.rsa is not None:
            try:
                self.rsa.verify(_b64(legacy), body, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                raise WebhookSignatureInvalid("The x-wh-signature does not verify.") from None
            return "rsa"
        raise WebhookSignatureInvalid("The webhook is not signed (x-ghl-signature).")


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookSignatureInvalid("The signature is not base64.") from None


def _load(pem: str, kind: type[Any]) -> Any:
    if not pem.strip():
        return None
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, kind):
        raise ValueError(f"the configured webhook key is not a {kind.__name__}")
    return key


def _timestamp(value: str | int | float) -> float:
    if isinstance(value, int | float):
        return value / 1000 if value > 1e11 else float(value)  # GHL sends ISO strings; epoch ms or s accepted
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValidationFailed("The webhook's timestamp is not a date.") from None


class Webhooks:
    def __init__(
        self,
        db: Database,
        *,
        settings: WorkflowsSettings,
        on_install: Callable[[str, str], Any] | None = None,
        on_uninstall: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.verifier = Verifier(settings)
        self.on_install = on_install
        self.on_uninstall = on_uninstall
        self.clock = clock

    async def receive(self, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        self.verifier.verify(body, headers)
        try:
            event = msgspec.json.decode(body, type=Event)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise ValidationFailed(f"Not a GoHighLevel webhook: {error}") from None
        if abs(self.clock() - _timestamp(event.timestamp)) > self.settings.webhook_tolerance_seconds:
            raise WebhookStale("The webhook's timestamp is too far from now; a replay is refused.")
        now_ms = int(self.clock() * 1000)
        try:
            async with self.db.transaction() as session:
                if await session.get(WebhookEventRow, event.webhookId[:100]) is not None:
                    return {"status": "duplicate"}
                session.add(
                    WebhookEventRow(webhook_id=event.webhookId[:100], type=event.type[:64], received_at_ms=now_ms)
                )
                queued = await self._apply_workflow(session, event, now_ms) if event.type in WORKFLOW_EVENTS else 0
        except IntegrityError:  # the same delivery, applied by a concurrent request: theirs counts
            return {"status": "duplicate"}
        await self._lifecycle(event)
        log.info("ghl webhook", type=event.type, webhook_id=event.webhookId, queued=queued)
        return {"status": "accepted", "queued": queued}

    async def _apply_workflow(self, session: Any, event: Event, now_ms: int) -> int:
        """Each user's copy of the workflow takes the new version; a changed version queues a re-analysis."""
        wid, location = event.id or event.workflowId, event.locationId
        if not wid or not location or event.version is None:
            raise ValidationFailed("A workflow event needs locationId, id and version.")
        users = set(
            await session.scalars(
                select(ConnectionRow.user_id).where(
                    ConnectionRow.resource_id == location, ConnectionRow.kind == "location"
                )
            )
        )
        rows = {
            r.user_id: r
            for r in await session.scalars(
                select(WorkflowRow).where(
                    WorkflowRow.source == "ghl", WorkflowRow.location_id == location, WorkflowRow.external_id == wid
                )
            )
        }
        queued = 0
        for user in sorted(users | set(rows)):
            row = rows.get(user)
            if row is None:
                row = WorkflowRow(
                    id=uuid.uuid4().hex, user_id=user, source="ghl", location_id=location, external_id=wid, version=-1
                )
                session.add(row)
            row.name = (event.name or row.name or "")[:500]
            row.status = (event.status or row.status or "draft")[:16]
            row.updated_at_ms = now_ms
            if row.version == event.version:
                continue  # saved without a change of version: nothing new to analyse
            row.version, row.definition = event.version, None
            session.add(
                ReanalysisRow(id=uuid.uuid4().hex, workflow_id=row.id, version=event.version, queued_at_ms=now_ms)
            )
            queued += 1
        return queued

    async def _lifecycle(self, event: Event) -> None:
        if event.type == "UNINSTALL" and self.on_uninstall is not None:
            await self.on_uninstall(event.locationId or event.companyId or "")
        elif event.type == "INSTALL" and self.on_install is not None and event.locationId and event.companyId:
            try:
                await self.on_install(event.companyId, event.locationId)
            except Exception as exc:  # the location can still be connected by signing in; the event is recorded
                log.warning(
                    "ghl install: no location token minted", location=event.locationId, error=type(exc).__name__
                )

    async def health(self) -> dict[str, Any]:
        async with self.db.session() as session:
            queued = await session.scalar(select(func.count()).select_from(ReanalysisRow))
            last = await session.scalar(select(func.max(WebhookEventRow.received_at_ms)))
        return {
            "status": "pass",
            "signature": "ed25519" if self.verifier.ed25519 is not None else "not configured (every webhook refused)",
            "legacyRsa": self.verifier.rsa is not None,
            "lastReceivedAt": dt.datetime.fromtimestamp(last / 1000, dt.UTC).isoformat() if last else None,
            "queuedReanalyses": int(queued or 0),
        }
