"""GoHighLevel as a source of workflows: connections made at sign-in, workflow lists, definitions, agencies.

source = GhlSource(db, tokens=tokens, client=client)
identity.on_oauth_signin("gohighlevel", source.on_signin)       # a location (or company) connection
await source.sync(user_id)                                     # GHL's lists → workflow rows (metadata)
definition = await source.definition(row)                      # where GHL gives the steps
"""

from __future__ import annotations

import datetime as dt
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import func, select, update

from bastion.core.db import Database
from bastion.core.logging import get_logger
from bastion.identity.service import ProviderTokens
from bastion.workflows.engine import grade
from bastion.workflows.errors import GhlReconnectRequired
from bastion.workflows.ghl.client import GhlAuthRejected, GhlClient
from bastion.workflows.ghl.tokens import Tokens, connections_of
from bastion.workflows.models import AnalysisRow, ConnectionRow, WorkflowRow
from bastion.workflows.upsert import insert_missing

T = TypeVar("T")
log = get_logger("bastion.workflows")


class GhlSource:
    def __init__(
        self, db: Database, *, tokens: Tokens, client: GhlClient, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.client = client
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- connections -------------------------------------------------------------------------------------

    async def on_signin(self, user_id: str, tokens: ProviderTokens) -> None:
        """Identity's hook after a GoHighLevel sign-in: keep the tokens as the user's connection to the location
        (or, for an agency's Company token, to the company)."""
        extra = tokens.extra
        company = str(extra.get("companyId") or "")
        if str(extra.get("userType", "Location")) == "Company":
            kind, resource = "company", company
        else:
            kind, resource = "location", str(extra.get("locationId") or "")
        if not resource:
            raise GhlReconnectRequired("GoHighLevel did not say which location was chosen; connect again.")
        expires_in = (tokens.expires_at - dt.datetime.now(dt.UTC)).total_seconds() if tokens.expires_at else 3600
        pair = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_in": expires_in,
            "scope": tokens.scope,
        }
        await self.connect(user_id, kind, resource, company or None, pair)

    async def connect(
        self, user_id: str, kind: str, resource: str, company: str | None, pair: dict[str, Any], name: str = ""
    ) -> ConnectionRow:
        async with self.db.transaction() as session:
            row = await session.scalar(
                select(ConnectionRow).where(
                    ConnectionRow.user_id == user_id, ConnectionRow.kind == kind, ConnectionRow.resource_id == resource
                )
            )
            if row is None:
                row = ConnectionRow(
                    id=uuid.uuid4().hex, user_id=user_id, kind=kind, resource_id=resource, token_version=0
                )
                session.add(row)
            for key, value in self.tokens.seal(row, pair).items():
                setattr(row, key, value)
            row.company_id, row.status, row.lease_until_ms = company, "active", 0
            row.name = name or row.name or ""
            row.token_version = (row.token_version or 0) + 1
            row.updated_at_ms = self.now_ms()
        log.info("ghl connected", kind=kind, resource=resource, user_id=user_id)
        return row

    async def install(self, company_id: str, location_id: str) -> None:
        """GHL's INSTALL for a location of a connected company: mint the location's tokens (as GHL's SDK does)."""
        async with self.db.session() as session:
            companies = list(
                await session.scalars(
                    select(ConnectionRow).where(
                        ConnectionRow.kind == "company",
                        ConnectionRow.resource_id == company_id,
                        ConnectionRow.status == "active",
                    )
                )
            )
        for company in companies:
            pair = await self._with_token(
                company,
                functools.partial(self.client.location_token, company_id=company_id, location_id=location_id),
            )
            await self.connect(company.user_id, "location", location_id, company_id, pair)

    async def disconnect(self, resource: str) -> int:
        """The app was uninstalled from a location (or company): its tokens go, its users must reconnect."""
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(ConnectionRow)
                .where(ConnectionRow.resource_id == resource)
                .values(
                    status="uninstalled",
                    access_token=None,
                    refresh_token=None,
                    updated_at_ms=self.now_ms(),
                    token_version=ConnectionRow.token_version + 1,
                )
            )
        return int(result.rowcount or 0)

    async def _with_token(self, connection: ConnectionRow, call: Callable[[str], Awaitable[T]]) -> T:
        """``call(token)``; on a 401, once more with a refreshed token (GHL revokes early sometimes)."""
        _, token = await self.tokens.access_token(connection.id)
        try:
            return await call(token)
        except GhlAuthRejected:
            _, token = await self.tokens.access_token(connection.id, force=True)
            try:
                return await call(token)
            except GhlAuthRejected:
                await self.tokens.set_status(connection, "reconnect")
                raise GhlReconnectRequired(
                    f"GoHighLevel refuses this app's token for {connection.resource_id}: sign in again."
                ) from None

    # -- workflows ---------------------------------------------------------------------------------------

    async def sync(self, user_id: str) -> None:
        """GHL's workflow lists of every connected location → workflow rows; a new version drops the stored
        definition (fetched again when next analysed)."""
        for connection in await connections_of(self.db, user_id, "location"):
            if connection.status != "active":
                raise GhlReconnectRequired(
                    f"Location {connection.resource_id} is disconnected: sign in with GoHighLevel again.",
                    extra={"location_id": connection.resource_id},
                )
            listed = await self._with_token(
                connection, functools.partial(self.client.workflows, connection.resource_id)
            )
            await self.upsert(user_id, connection.resource_id, listed)

    async def upsert(self, user_id: str, location_id: str, listed: list[dict[str, Any]]) -> list[WorkflowRow]:
        changed: list[WorkflowRow] = []
        where = (WorkflowRow.user_id == user_id, WorkflowRow.source == "ghl", WorkflowRow.location_id == location_id)
        listed = [m for m in listed if str(m.get("id") or "")]
        async with self.db.transaction() as session:
            # new ones first, each only once even when two requests sync the same location at the same time
            fresh = [
                {"id": uuid.uuid4().hex, "user_id": user_id, "source": "ghl", "location_id": location_id,
                 "external_id": str(m["id"])[:200], "version": -1, "updated_at_ms": self.now_ms()}
                for m in listed
            ]  # fmt: skip
            await insert_missing(session, self.db.dialect, WorkflowRow, fresh)
            existing = {r.external_id: r for r in await session.scalars(select(WorkflowRow).where(*where))}
            for meta in listed:
                row = existing[str(meta["id"])[:200]]
                version = int(meta["version"]) if isinstance(meta.get("version"), int) else 0
                if row.version != version:
                    row.definition, row.version = None, version
                    changed.append(row)
                row.name = str(meta.get("name") or "")[:500]
                row.status = str(meta.get("status") or "draft")[:16]
                row.updated_at_ms = self.now_ms()
        return changed

    async def definition(self, row: WorkflowRow) -> dict[str, Any]:
        """The workflow's definition from GHL (where it gives it), stored on the row."""
        async with self.db.session() as session:
            connection = await session.scalar(
                select(ConnectionRow).where(
                    ConnectionRow.user_id == row.user_id,
                    ConnectionRow.kind == "location",
                    ConnectionRow.resource_id == row.location_id,
                )
            )
        if connection is None:
            raise GhlReconnectRequired(f"Location {row.location_id} is not connected: sign in with GoHighLevel.")
        return await self._with_token(connection, lambda t: self.client.definition(row.location_id, row.external_id, t))

    # -- agencies ----------------------------------------------------------------------------------------

    async def agency_locations(self, user_id: str) -> list[ConnectionRow]:
        """Each company connection's installed locations, each with location tokens minted from the company's."""
        made: list[ConnectionRow] = []
        for company in await connections_of(self.db, user_id, "company"):
            if company.status != "active":
                raise GhlReconnectRequired(f"Company {company.resource_id} is disconnected: sign in again.")
            locations = await self._with_token(
                company, functools.partial(self.client.installed_locations, company_id=company.resource_id)
            )
            for loc in locations:
                loc_id = str(loc.get("_id") or loc.get("id") or "")
                if not loc_id:
                    continue
                pair = await self._with_token(
                    company,
                    functools.partial(self.client.location_token, company_id=company.resource_id, location_id=loc_id),
                )
                made.append(
                    await self.connect(
                        user_id, "location", loc_id, company.resource_id, pair, str(loc.get("name") or "")
                    )
                )
        return made

    async def summary(self, user_id: str) -> list[dict[str, Any]]:
        """Per connected location: its workflows, how many were analysed, the worst latest score and grade."""
        out: list[dict[str, Any]] = []
        async with self.db.session() as session:
            for connection in await connections_of(self.db, user_id, "location"):
                rows = list(
                    await session.scalars(
                        select(WorkflowRow).where(
                            WorkflowRow.user_id == user_id, WorkflowRow.location_id == connection.resource_id
                        )
                    )
                )
                latest = (
                    select(AnalysisRow.workflow_id, func.max(AnalysisRow.created_at_ms).label("at"))
                    .where(AnalysisRow.workflow_id.in_([r.id for r in rows]))
                    .group_by(AnalysisRow.workflow_id)
                    .subquery()
                )
                scores = list(
                    await session.scalars(
                        select(AnalysisRow.score).join(
                            latest,
                            (AnalysisRow.workflow_id == latest.c.workflow_id)
                            & (AnalysisRow.created_at_ms == latest.c.at),
                        )
                    )
                )
                worst = min(scores) if scores else None
                out.append(
                    {
                        "locationId": connection.resource_id,
                        "name": connection.name,
                        "status": connection.status,
                        "workflows": len(rows),
                        "analysed": len(scores),
                        "worstScore": worst,
                        "worstGrade": grade(worst) if worst is not None else None,
                    }
                )
        return out
