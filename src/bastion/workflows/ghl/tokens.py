"""GHL tokens per connection: sealed with the location bound in, refreshed by one worker at a time.

GHL rotates the refresh token on every refresh (the old one dies), so two workers refreshing at once would
leave one of them — and, if it wrote last, the account — with a dead token. The refresh takes a lease on
the connection's row (a conditional UPDATE, so it holds across workers and instances sharing the database);
the others wait for the new pair and read it. The new pair is written in one statement, conditional on the
``token_version`` read, so a refresh that lost a race cannot overwrite the winner's.

Tokens are encrypted with the core keyring; the associated data is ``workflows:ghl:<row>:<location>:<which>``:
a ciphertext copied into another row, another location or the other field does not decrypt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from bastion.core.crypto import DecryptionError, Keyring
from bastion.core.db import Database
from bastion.core.logging import get_logger
from bastion.workflows.errors import GhlReconnectRequired, GhlUnavailable
from bastion.workflows.ghl.client import GhlAuthRejected, GhlClient
from bastion.workflows.models import ConnectionRow

log = get_logger("bastion.workflows")
LEASE_MS = 30_000  # longer than a refresh can take (the GHL timeout); a crashed holder frees it by expiry
POLL_SECONDS = 0.05


def sealed_context(row_id: str, resource_id: str, which: str) -> bytes:
    return f"workflows:ghl:{row_id}:{resource_id}:{which}".encode()


class Tokens:
    def __init__(
        self,
        db: Database,
        *,
        keyring: Keyring,
        client: GhlClient,
        margin_seconds: int,
        wait_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.client = client
        self.margin_ms = margin_seconds * 1000
        self.wait_seconds = wait_seconds
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def seal(self, row: ConnectionRow, pair: dict[str, Any]) -> dict[str, Any]:
        """The column values for a fresh token response (``access_token``, ``refresh_token``, ``expires_in``)."""
        access, refresh = pair.get("access_token"), pair.get("refresh_token")
        if not isinstance(access, str) or not access:
            raise GhlUnavailable("GoHighLevel's token response has no access token.")
        expires_in = pair.get("expires_in")
        seconds = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        return {
            "access_token": self.keyring.encrypt(
                access.encode(), context=sealed_context(row.id, row.resource_id, "access")
            ),
            "refresh_token": (
                self.keyring.encrypt(refresh.encode(), context=sealed_context(row.id, row.resource_id, "refresh"))
                if isinstance(refresh, str) and refresh
                else None
            ),
            "expires_at_ms": self.now_ms() + int(seconds * 1000),
            "scope": str(pair.get("scope") or "")[:1000],
        }

    def open(self, row: ConnectionRow, which: str) -> str:
        blob = row.access_token if which == "access" else row.refresh_token
        if blob is None:
            raise GhlReconnectRequired(self._reconnect_text(row))
        try:
            return self.keyring.decrypt(blob, context=sealed_context(row.id, row.resource_id, which)).decode()
        except DecryptionError:
            log.warning("ghl token does not decrypt", connection=row.id)
            raise GhlReconnectRequired(self._reconnect_text(row)) from None

    async def load(self, connection_id: str) -> ConnectionRow:
        async with self.db.session() as session:
            row = await session.get(ConnectionRow, connection_id, populate_existing=True)
        if row is None:
            raise GhlReconnectRequired("This GoHighLevel connection is gone; connect the location again.")
        return row

    async def access_token(self, connection_id: str, *, force: bool = False) -> tuple[ConnectionRow, str]:
        """A valid access token for the connection, refreshed first when it expires within the margin (or when
        ``force``: GHL answered 401 to the one we had)."""
        row = await self.load(connection_id)
        self._check_active(row)
        if not force and row.expires_at_ms - self.margin_ms > self.now_ms():
            return row, self.open(row, "access")
        return await self._refresh(row)

    async def _refresh(self, seen: ConnectionRow) -> tuple[ConnectionRow, str]:
        deadline = self.clock() + self.wait_seconds
        while True:
            if await self._take_lease(seen):
                try:
                    row = await self.load(seen.id)
                    if row.token_version != seen.token_version:  # refreshed while we queued for the lease
                        self._check_active(row)
                        return row, self.open(row, "access")
                    return await self._rotate(row)
                finally:
                    await self._drop_lease(seen.id)
            await asyncio.sleep(POLL_SECONDS)
            row = await self.load(seen.id)
            if row.token_version != seen.token_version:
                self._check_active(row)
                return row, self.open(row, "access")
            if self.clock() > deadline:
                raise GhlUnavailable("Refreshing the GoHighLevel token is taking too long; try again.", retry_after=5)

    async def _rotate(self, row: ConnectionRow) -> tuple[ConnectionRow, str]:
        user_type = "Company" if row.kind == "company" else "Location"
        try:
            pair = await self.client.refresh(self.open(row, "refresh"), user_type=user_type)
        except GhlAuthRejected:
            await self.set_status(row, "reconnect")
            log.info("ghl refresh rejected", connection=row.id)
            raise GhlReconnectRequired(self._reconnect_text(row)) from None
        values = self.seal(row, pair)
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(ConnectionRow)
                .where(ConnectionRow.id == row.id, ConnectionRow.token_version == row.token_version)
                .values(**values, token_version=row.token_version + 1, updated_at_ms=self.now_ms())
            )
        if result.rowcount != 1:  # another holder (after our lease expired) wrote first: theirs is the live pair
            fresh = await self.load(row.id)
            return fresh, self.open(fresh, "access")
        log.info("ghl tokens refreshed", connection=row.id)
        return await self.load(row.id), str(pair["access_token"])

    async def set_status(self, row: ConnectionRow, status: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(
                update(ConnectionRow)
                .where(ConnectionRow.id == row.id)
                .values(status=status, token_version=ConnectionRow.token_version + 1, updated_at_ms=self.now_ms())
            )

    async def _take_lease(self, row: ConnectionRow) -> bool:
        now = self.now_ms()
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(ConnectionRow)
                .where(ConnectionRow.id == row.id, ConnectionRow.lease_until_ms < now)
                .values(lease_until_ms=now + LEASE_MS)
            )
        return bool(result.rowcount == 1)

    async def _drop_lease(self, connection_id: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(update(ConnectionRow).where(ConnectionRow.id == connection_id).values(lease_until_ms=0))

    def _check_active(self, row: ConnectionRow) -> None:
        if row.status != "active":
            raise GhlReconnectRequired(self._reconnect_text(row))

    @staticmethod
    def _reconnect_text(row: ConnectionRow) -> str:
        return (
            f"GoHighLevel no longer accepts this app's access to {row.kind} {row.resource_id}: "
            "sign in with GoHighLevel again (/auth/login/gohighlevel)."
        )


async def connections_of(db: Database, user_id: str, kind: str | None = None) -> list[ConnectionRow]:
    query = select(ConnectionRow).where(ConnectionRow.user_id == user_id)
    if kind is not None:
        query = query.where(ConnectionRow.kind == kind)
    async with db.session() as session:
        return list(await session.scalars(query.order_by(ConnectionRow.resource_id)))
