"""The gate: check-in and check-out by the pass code a guard scans (from the QR code or typed).

A pass is good only with its code (compared as SHA-256 digests in constant time), at its own site, inside
its window (``early_minutes`` before the start to the end) and once: a second check-in is a 409 with the
status ``checked_in``, and after check-out the code is gone (403). The host is told of the arrival by a
message enqueued in the check-in's transaction.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa

from bastion.visitors.access import caller_of
from bastion.visitors.common import audit, to_datetime
from bastion.visitors.errors import (
    NotSiteRole,
    PassInvalid,
    PassOutsideWindow,
    PassWrongSite,
    SiteNotFound,
    TransitionNotAllowed,
    VisitNotFound,
)
from bastion.visitors.models import MemberRow, VisitorRow, VisitRow
from bastion.visitors.visits import ALLOWED_FROM, move, pass_hash, site_of, view_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from bastion.visitors.schemas import PassScan, VisitView
    from bastion.visitors.visits import Visits


class Gate:
    def __init__(self, visits: Visits) -> None:
        self.visits = visits

    async def check_in(self, account_id: str, visit_id: str, scan: PassScan) -> VisitView:
        visits = self.visits
        now = visits.now_ms()
        async with visits.db.begin() as conn:
            row = await self._scanned(conn, account_id, visit_id, scan, "checked_in")
            early = visits.settings.early_minutes * 60_000
            if not row.starts_at_ms - early <= now <= row.ends_at_ms:
                raise PassOutsideWindow(
                    "This pass is not valid now.",
                    extra={
                        "valid_from": to_datetime(row.starts_at_ms - early).isoformat(),
                        "valid_until": to_datetime(row.ends_at_ms).isoformat(),
                    },
                )
            await move(conn, visit_id, "checked_in", now, checked_in_at_ms=now)
            await audit(conn, row.site_id, "checked_in", account_id, now, visit_id=visit_id)
            message_id = await self._tell_host(conn, row, now)
        if message_id:
            visits.notifier.committed()
        # the hot path of the gate: the answer is built from what was read and written, not read again
        view = view_of(row, message_id=message_id)
        return msgspec.structs.replace(view, status="checked_in", checked_in_at=to_datetime(now))

    async def check_out(self, account_id: str, visit_id: str, scan: PassScan) -> VisitView:
        visits = self.visits
        now = visits.now_ms()
        async with visits.db.begin() as conn:
            row = await self._scanned(conn, account_id, visit_id, scan, "checked_out")
            await move(conn, visit_id, "checked_out", now, checked_out_at_ms=now, pass_hash=None)
            await audit(conn, row.site_id, "checked_out", account_id, now, visit_id=visit_id)
        view = view_of(row)
        return msgspec.structs.replace(view, status="checked_out", checked_out_at=to_datetime(now))

    async def _scanned(self, conn: AsyncConnection, account_id: str, visit_id: str, scan: PassScan, to: str) -> Any:
        """The visit (with ``visitor_name`` and ``host_phone``), once the caller is a guard (or admin) at the
        gate's site, the visit may move ``to`` (else 409 with its status: a pass used twice) and the code is
        this visit's."""
        caller = await caller_of(conn, account_id)
        if not caller.roles_at(scan.site_id):
            raise SiteNotFound(f"No site {scan.site_id!r}.")
        if not caller.has(scan.site_id, "guard", "admin"):
            raise NotSiteRole("Only the site's guards and admins check visitors in and out.")
        host = sa.and_(
            MemberRow.site_id == VisitRow.site_id, MemberRow.account_id == VisitRow.host_id, MemberRow.role == "host"
        )
        query = (
            sa.select(VisitRow, VisitorRow.name.label("visitor_name"), MemberRow.phone.label("host_phone"))
            .join(VisitorRow, VisitorRow.id == VisitRow.visitor_id)
            .outerjoin(MemberRow, host)
            .where(VisitRow.id == visit_id)
        )
        row = (await conn.execute(query)).first()
        if row is None:
            raise VisitNotFound(f"No visit {visit_id!r}.")
        if row.site_id != scan.site_id:
            raise PassWrongSite("This pass is for another site.")
        if row.status not in ALLOWED_FROM[to]:
            raise TransitionNotAllowed(
                f"A visit that is {row.status} cannot become {to}.",
                extra={"current_status": row.status, "requested": to},
            )
        if row.pass_hash is None or not hmac.compare_digest(row.pass_hash, pass_hash(scan.code)):
            raise PassInvalid("This pass code is not valid for this visit (wrong, or already used up).")
        return row

    async def _tell_host(self, conn: AsyncConnection, row: Any, now: int) -> str | None:
        if not row.host_phone:
            return None
        site = await site_of(conn, row.site_id)
        notifier = self.visits.notifier
        params = [row.visitor_name or "", site.name]
        return await notifier.send(conn, site, row.host_phone, notifier.templates.arrived, params, now)
