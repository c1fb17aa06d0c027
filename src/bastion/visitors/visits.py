"""Visits and their passes: invite, walk-up, approve, reject, cancel, read; the status machine.

    pending ──▶ approved ──▶ checked_in ──▶ checked_out
       │           ├──▶ cancelled | no_show | expired
       └──▶ rejected | cancelled | expired

A host's invitation is approved at once (the host is the approver); a guard's walk-up waits for its host.
A move the machine does not allow is a 409 with the current status, decided by one conditional UPDATE (two
guards scanning one pass at once: one wins). The pass code is 128 random bits, shown once, stored as SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bastion.visitors.access import Caller, caller_of
from bastion.visitors.common import audit, invalid, local_day, new_id, to_datetime, to_ms, zone
from bastion.visitors.errors import NotSiteRole, TransitionNotAllowed, VisitNotFound, VisitorBlocked
from bastion.visitors.models import MemberRow, SiteRow, VisitorRow, VisitRow
from bastion.visitors.people import visible_visitors
from bastion.visitors.schemas import NewVisit, VisitPage, VisitView

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from bastion.core.db import Database
    from bastion.visitors.notify import Notifier
    from bastion.visitors.settings import VisitorsSettings

ALLOWED_FROM = {
    "approved": ("pending",),
    "rejected": ("pending",),
    "cancelled": ("pending", "approved"),
    "checked_in": ("approved",),
    "checked_out": ("checked_in",),
    "no_show": ("approved",),
    "expired": ("pending", "approved"),
}
MAX_VISIT_MS = 14 * 86_400_000


def pass_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def pass_link(base_url: str, visit_id: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/passes/{visit_id}/{code}"


def view_of(row: VisitRow, pass_code: str | None = None, message_id: str | None = None) -> VisitView:
    return VisitView(
        id=row.id,
        site_id=row.site_id,
        visitor_id=row.visitor_id,
        host_id=row.host_id,
        status=row.status,
        starts_at=to_datetime(row.starts_at_ms),
        ends_at=to_datetime(row.ends_at_ms),
        purpose=row.purpose,
        checked_in_at=to_datetime(row.checked_in_at_ms) if row.checked_in_at_ms else None,
        checked_out_at=to_datetime(row.checked_out_at_ms) if row.checked_out_at_ms else None,
        pass_code=pass_code,
        message_id=message_id,
    )


async def move(conn: AsyncConnection, visit_id: str, to: str, now_ms: int, **values: object) -> None:
    """Move a visit to ``to`` if its status allows it, else 409 with the current status."""
    done = await conn.execute(
        sa.update(VisitRow)
        .where(VisitRow.id == visit_id, VisitRow.status.in_(ALLOWED_FROM[to]))
        .values(status=to, updated_at_ms=now_ms, **values)
    )
    if done.rowcount != 1:
        current = (await conn.execute(sa.select(VisitRow.status).where(VisitRow.id == visit_id))).scalar()
        raise TransitionNotAllowed(
            f"A visit that is {current} cannot become {to}.", extra={"current_status": current, "requested": to}
        )


async def site_of(conn: AsyncConnection, site_id: str) -> SiteRow:
    return (await conn.execute(sa.select(SiteRow).where(SiteRow.id == site_id))).one()  # type: ignore[return-value]


async def visible_visits(conn: AsyncConnection, caller: Caller, now_ms: int) -> sa.ColumnElement[bool]:
    """A host sees the visits it hosts, a guard its sites' visits of today (site time), an admin its sites'."""
    clauses: list[sa.ColumnElement[bool]] = [
        VisitRow.site_id.in_(caller.sites_with("admin")),
        sa.and_(VisitRow.host_id == caller.account_id, VisitRow.site_id.in_(caller.sites_with("host"))),
    ]
    guard_sites = caller.sites_with("guard")
    if guard_sites:
        zones = (await conn.execute(sa.select(SiteRow.id, SiteRow.timezone).where(SiteRow.id.in_(guard_sites)))).all()
        for site_id, tz in zones:
            start, end, _ = local_day(now_ms, tz)
            clauses.append(
                sa.and_(VisitRow.site_id == site_id, VisitRow.starts_at_ms < end, VisitRow.ends_at_ms >= start)
            )
    return sa.or_(*clauses)


class Visits:
    def __init__(
        self,
        db: Database,
        notifier: Notifier,
        settings: VisitorsSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.settings = settings
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def create(self, account_id: str, data: NewVisit) -> VisitView:
        """A host invites (approved at once, the pass goes out); a guard or admin registers a walk-up for a
        host, pending that host's approval."""
        now = self.now_ms()
        starts, ends = to_ms(data.starts_at), to_ms(data.ends_at)
        if ends <= starts or ends - starts > MAX_VISIT_MS:
            raise invalid("ends_at", "after starts_at, and at most 14 days later")
        if ends <= now:
            raise invalid("ends_at", "in the future")
        visit_id = new_id(now)
        async with self.db.begin() as conn:
            caller = await caller_of(conn, account_id)
            visitor = (
                await conn.execute(
                    sa.select(VisitorRow).where(VisitorRow.id == data.visitor_id, visible_visitors(caller))
                )
            ).first()
            if visitor is None or visitor.erased_at_ms is not None:
                raise invalid("visitor_id", "no such visitor")
            if visitor.blocked:
                raise VisitorBlocked("This visitor is blocked at this site.")
            site_id = visitor.site_id
            inviting = data.host_id in (None, account_id) and caller.has(site_id, "host")
            if inviting:
                host_id = account_id
            elif data.host_id and caller.has(site_id, "guard", "admin"):
                host_id = data.host_id
                await self._require_host(conn, site_id, host_id)
            else:
                raise NotSiteRole("A host invites its own visitors; a guard or admin names the host of a walk-up.")
            await conn.execute(
                sa.insert(VisitRow).values(
                    id=visit_id,
                    site_id=site_id,
                    visitor_id=visitor.id,
                    host_id=host_id,
                    status="pending",
                    starts_at_ms=starts,
                    ends_at_ms=ends,
                    purpose=data.purpose,
                    created_by=account_id,
                    created_at_ms=now,
                    updated_at_ms=now,
                )
            )
            await audit(conn, site_id, "invited" if inviting else "walk_up", account_id, now, visit_id=visit_id)
            code = message_id = None
            if inviting:
                code, message_id = await self._approve(conn, account_id, visit_id, now)
            row = await self._row(conn, visit_id)
        if message_id:
            self.notifier.committed()
        return view_of(row, code, message_id)

    async def approve(self, account_id: str, visit_id: str) -> VisitView:
        now = self.now_ms()
        async with self.db.begin() as conn:
            row = await self._decider(conn, account_id, visit_id, now)
            visitor = (await conn.execute(sa.select(VisitorRow).where(VisitorRow.id == row.visitor_id))).one()
            if visitor.blocked:
                raise VisitorBlocked("This visitor is blocked at this site.")
            code, message_id = await self._approve(conn, account_id, visit_id, now)
            row = await self._row(conn, visit_id)
        if message_id:
            self.notifier.committed()
        return view_of(row, code, message_id)

    async def reject(self, account_id: str, visit_id: str) -> VisitView:
        now = self.now_ms()
        async with self.db.begin() as conn:
            row = await self._decider(conn, account_id, visit_id, now)
            await move(conn, visit_id, "rejected", now)
            await audit(conn, row.site_id, "rejected", account_id, now, visit_id=visit_id)
            return view_of(await self._row(conn, visit_id))

    async def cancel(self, account_id: str, visit_id: str) -> VisitView:
        """The host, the one who registered the visit, or the site's admin cancels; the pass dies with it."""
        now = self.now_ms()
        async with self.db.begin() as conn:
            caller = await caller_of(conn, account_id)
            row = await self._visible(conn, caller, visit_id, now)
            if account_id not in (row.host_id, row.created_by) and not caller.has(row.site_id, "admin"):
                raise NotSiteRole("Only the host, the one who registered it, or the site's admin cancels a visit.")
            await move(conn, visit_id, "cancelled", now, pass_hash=None)
            await audit(conn, row.site_id, "cancelled", account_id, now, visit_id=visit_id)
            return view_of(await self._row(conn, visit_id))

    async def get(self, account_id: str, visit_id: str) -> VisitView:
        now = self.now_ms()
        async with self.db.engine.connect() as conn:
            return view_of(await self._visible(conn, await caller_of(conn, account_id), visit_id, now))

    async def page(
        self,
        account_id: str,
        *,
        cursor: str | None = None,
        limit: int = 50,
        day: str | None = None,
        status: str | None = None,
        host_id: str | None = None,
        site_id: str | None = None,
    ) -> VisitPage:
        """Newest first; ``day`` (YYYY-MM-DD) is read in each site's time zone."""
        now = self.now_ms()
        async with self.db.engine.connect() as conn:
            caller = await caller_of(conn, account_id)
            query = sa.select(VisitRow).where(await visible_visits(conn, caller, now))
            if day:
                query = query.where(await self._on_day(conn, caller, day))
            if status:
                query = query.where(VisitRow.status == status)
            if host_id:
                query = query.where(VisitRow.host_id == host_id)
            if site_id:
                query = query.where(VisitRow.site_id == site_id)
            if cursor:
                query = query.where(VisitRow.id < cursor)
            rows = (await conn.execute(query.order_by(VisitRow.id.desc()).limit(limit + 1))).all()
        items = [view_of(r) for r in rows[:limit]]  # type: ignore[arg-type]
        return VisitPage(items=items, next_cursor=items[-1].id if len(rows) > limit else None)

    # -- helpers ---------------------------------------------------------------------------------------------

    async def _approve(self, conn: AsyncConnection, account_id: str, visit_id: str, now: int) -> tuple[str, str | None]:
        """Issue the pass and send it (when the visitor consented to WhatsApp), in the caller's transaction."""
        code = secrets.token_urlsafe(16)
        await move(conn, visit_id, "approved", now, pass_hash=pass_hash(code))
        row = await self._row(conn, visit_id)
        await audit(conn, row.site_id, "approved", account_id, now, visit_id=visit_id)
        visitor = (await conn.execute(sa.select(VisitorRow).where(VisitorRow.id == row.visitor_id))).one()
        if not visitor.phone or visitor.consent_at_ms is None:
            return code, None
        site = await site_of(conn, row.site_id)
        shown = pass_link(self.settings.pass_url, visit_id, code) if self.settings.pass_url else code
        params = [visitor.name or "", site.name, self.notifier.local_time(site, row.starts_at_ms), shown]
        message_id = await self.notifier.send(
            conn, site, visitor.phone, self.notifier.templates.invitation, params, now
        )
        return code, message_id

    async def _decider(self, conn: AsyncConnection, account_id: str, visit_id: str, now: int) -> VisitRow:
        caller = await caller_of(conn, account_id)
        row = await self._visible(conn, caller, visit_id, now)
        if row.host_id != account_id and not caller.has(row.site_id, "admin"):
            raise NotSiteRole("Only the visit's host or the site's admin approves or rejects it.")
        return row

    async def _require_host(self, conn: AsyncConnection, site_id: str, host_id: str) -> None:
        found = (
            await conn.execute(
                sa.select(MemberRow.id).where(
                    MemberRow.site_id == site_id, MemberRow.account_id == host_id, MemberRow.role == "host"
                )
            )
        ).first()
        if found is None:
            raise invalid("host_id", "not a host of this site")

    async def _on_day(self, conn: AsyncConnection, caller: Caller, day: str) -> sa.ColumnElement[bool]:
        import datetime as dt

        try:
            date = dt.date.fromisoformat(day)
        except ValueError as exc:
            raise invalid("day", "a date, YYYY-MM-DD") from exc
        sites = list(caller.sites)
        zones = (await conn.execute(sa.select(SiteRow.id, SiteRow.timezone).where(SiteRow.id.in_(sites)))).all()
        clauses = []
        for site_id, tz in zones:
            start = to_ms(dt.datetime(date.year, date.month, date.day, tzinfo=zone(tz)))
            end = to_ms(dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=zone(tz)))
            clauses.append(
                sa.and_(VisitRow.site_id == site_id, VisitRow.starts_at_ms < end, VisitRow.ends_at_ms > start)
            )
        return sa.or_(sa.false(), *clauses)

    async def _visible(self, conn: AsyncConnection, caller: Caller, visit_id: str, now: int) -> VisitRow:
        row = (
            await conn.execute(
                sa.select(VisitRow).where(VisitRow.id == visit_id, await visible_visits(conn, caller, now))
            )
        ).first()
        if row is None:
            raise VisitNotFound(f"No visit {visit_id!r}.")
        return row  # type: ignore[return-value]

    async def _row(self, conn: AsyncConnection, visit_id: str) -> VisitRow:
        return (await conn.execute(sa.select(VisitRow).where(VisitRow.id == visit_id))).one()  # type: ignore[return-value]
