"""Visitors: the people who come, their consent to WhatsApp messages, the blocked flag, and their erasure.

Who sees a visitor: the site's admins and guards; a host the visitors it registered or hosts. Anyone else
gets 404. An erased visitor keeps its row (visits and the audit point at it) with no personal data left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa

from bastion.visitors.access import Caller, caller_of
from bastion.visitors.common import audit, check_phone, new_id, to_datetime, to_ms
from bastion.visitors.errors import NotSiteRole, SiteNotFound, VisitorNotFound
from bastion.visitors.models import VisitorRow, VisitRow
from bastion.visitors.schemas import Consent, NewVisitor, VisitorPatch, VisitorView

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from bastion.core.db import Database
    from bastion.visitors.files import Files


def visible_visitors(caller: Caller) -> sa.ColumnElement[bool]:
    """The visitors ``caller`` may see, as a WHERE clause."""
    wide = caller.sites_with("admin", "guard")
    hosted = sa.select(VisitRow.visitor_id).where(VisitRow.host_id == caller.account_id)
    own = sa.and_(
        VisitorRow.site_id.in_(caller.sites_with("host")),
        sa.or_(VisitorRow.created_by == caller.account_id, VisitorRow.id.in_(hosted)),
    )
    return sa.or_(VisitorRow.site_id.in_(wide), own)


def view_of(row: Any) -> VisitorView:
    consent = (
        Consent(to_datetime(row.consent_at_ms), row.consent_method or "") if row.consent_at_ms is not None else None
    )
    return VisitorView(
        id=row.id,
        site_id=row.site_id,
        name=row.name,
        phone=row.phone,
        consent=consent,
        blocked=bool(row.blocked),
        has_photo=row.photo_key is not None,
        has_id_document=row.id_document_key is not None,
        created_at=to_datetime(row.created_at_ms),
        erased=row.erased_at_ms is not None,
    )


class People:
    def __init__(self, db: Database, files: Files, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.files = files
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def create(self, account_id: str, data: NewVisitor) -> VisitorView:
        check_phone(data.phone)
        now = self._now_ms()
        visitor_id = new_id(now)
        async with self.db.begin() as conn:
            caller = await caller_of(conn, account_id)
            if not caller.roles_at(data.site_id):
                raise SiteNotFound(f"No site {data.site_id!r}.")
            await conn.execute(
                sa.insert(VisitorRow).values(
                    id=visitor_id,
                    site_id=data.site_id,
                    name=data.name,
                    phone=data.phone,
                    consent_at_ms=to_ms(data.consent.at) if data.consent else None,
                    consent_method=data.consent.method if data.consent else None,
                    blocked=False,
                    created_by=account_id,
                    created_at_ms=now,
                )
            )
            await audit(conn, data.site_id, "visitor_created", account_id, now, visitor_id=visitor_id)
            row = await self._row(conn, caller, visitor_id)
        return view_of(row)

    async def get(self, account_id: str, visitor_id: str) -> VisitorView:
        async with self.db.engine.connect() as conn:
            return view_of(await self._row(conn, await caller_of(conn, account_id), visitor_id))

    async def page(
        self, account_id: str, *, site_id: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[VisitorView], str | None]:
        """Newest first; ``cursor`` is the last id of the previous page."""
        async with self.db.engine.connect() as conn:
            caller = await caller_of(conn, account_id)
            query = sa.select(VisitorRow).where(visible_visitors(caller), VisitorRow.erased_at_ms.is_(None))
            if site_id:
                query = query.where(VisitorRow.site_id == site_id)
            if cursor:
                query = query.where(VisitorRow.id < cursor)
            rows = (await conn.execute(query.order_by(VisitorRow.id.desc()).limit(limit + 1))).all()
        items = [view_of(r) for r in rows[:limit]]
        return items, (items[-1].id if len(rows) > limit else None)

    async def update(self, account_id: str, visitor_id: str, patch: VisitorPatch) -> VisitorView:
        values: dict[str, object] = {}
        if not _unset(patch.name):
            values["name"] = patch.name
        if not _unset(patch.phone):
            check_phone(patch.phone)  # type: ignore[arg-type]
            values["phone"] = patch.phone
        if not _unset(patch.consent):
            consent = patch.consent
            values["consent_at_ms"] = to_ms(consent.at) if isinstance(consent, Consent) else None
            values["consent_method"] = consent.method if isinstance(consent, Consent) else None
        now = self._now_ms()
        async with self.db.begin() as conn:
            caller = await caller_of(conn, account_id)
            row = await self._row(conn, caller, visitor_id)
            if row.erased_at_ms is not None:
                raise VisitorNotFound(f"Visitor {visitor_id!r} was erased.")
            if not _unset(patch.blocked):
                if not caller.has(row.site_id, "admin", "guard"):
                    raise NotSiteRole("Only the site's guards and admins block or unblock visitors.")
                values["blocked"] = patch.blocked
            if values:
                await conn.execute(sa.update(VisitorRow).where(VisitorRow.id == visitor_id).values(**values))
                action = "visitor_blocked" if values.get("blocked") is True else "visitor_updated"
                await audit(conn, row.site_id, action, account_id, now, visitor_id=visitor_id)
            row = await self._row(conn, caller, visitor_id)
        return view_of(row)

    async def erase(self, account_id: str, visitor_id: str) -> None:
        """The site's admin erases a visitor: files first (so no copy outlives the erasure), then every
        personal field; the row, its visits and the audit stay, with ids only."""
        async with self.db.engine.connect() as conn:
            caller = await caller_of(conn, account_id)
            row = await self._row(conn, caller, visitor_id)
        if not caller.has(row.site_id, "admin"):
            raise NotSiteRole("Only the site's admin erases a visitor.")
        for key in (row.photo_key, row.id_document_key):
            if key:
                await self.files.delete(key)
        now = self._now_ms()
        async with self.db.begin() as conn:
            await conn.execute(
                sa.update(VisitorRow)
                .where(VisitorRow.id == visitor_id)
                .values(
                    name=None,
                    phone=None,
                    consent_at_ms=None,
                    consent_method=None,
                    photo_key=None,
                    id_document_key=None,
                    erased_at_ms=now,
                )
            )
            await conn.execute(sa.update(VisitRow).where(VisitRow.visitor_id == visitor_id).values(purpose=None))
            await audit(conn, row.site_id, "visitor_erased", account_id, now, visitor_id=visitor_id)

    async def _row(self, conn: AsyncConnection, caller: Caller, visitor_id: str) -> VisitorRow:
        row = (
            await conn.execute(sa.select(VisitorRow).where(VisitorRow.id == visitor_id, visible_visitors(caller)))
        ).first()
        if row is None:
            raise VisitorNotFound(f"No visitor {visitor_id!r}.")
        return row  # type: ignore[return-value]


def _unset(value: object) -> bool:
    return value is msgspec.UNSET
