"""Sites and their members (host, guard, admin), and the audit trail a site's admin reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from bastion.core.errors import Forbidden
from bastion.visitors.access import caller_of
from bastion.visitors.common import audit, check_phone, invalid, new_id, to_datetime, zone
from bastion.visitors.errors import MemberExists, NotSiteRole, SiteNotFound
from bastion.visitors.models import AuditRow, MemberRow, SiteRow
from bastion.visitors.schemas import AuditEntry, MemberView, NewMember, NewSite, SiteView

if TYPE_CHECKING:
    from bastion.core.db import Database


class Sites:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def create(self, account_id: str, platform_admin: bool, data: NewSite) -> SiteView:
        """A platform admin creates a site and becomes its admin (and the owner of its messages)."""
        if not platform_admin:
            raise Forbidden("Only a platform administrator creates sites.")
        zone(data.timezone)
        if (data.quiet_start is None) != (data.quiet_end is None):
            raise invalid("quiet_end", "quiet hours need both a start and an end")
        now = self._now_ms()
        site_id = new_id(now)
        async with self.db.begin() as conn:
            await conn.execute(
                sa.insert(SiteRow).values(
                    id=site_id,
                    name=data.name,
                    timezone=data.timezone,
                    quiet_start=data.quiet_start,
                    quiet_end=data.quiet_end,
                    owner_id=account_id,
                    created_at_ms=now,
                )
            )
            await conn.execute(sa.insert(MemberRow).values(site_id=site_id, account_id=account_id, role="admin"))
            await audit(conn, site_id, "site_created", account_id, now)
        return SiteView(site_id, data.name, data.timezone, data.quiet_start, data.quiet_end, ["admin"])

    async def mine(self, account_id: str) -> list[SiteView]:
        async with self.db.engine.connect() as conn:
            caller = await caller_of(conn, account_id)
            rows = (
                await conn.execute(sa.select(SiteRow).where(SiteRow.id.in_(list(caller.sites))).order_by(SiteRow.id))
            ).all()
        return [
            SiteView(r.id, r.name, r.timezone, r.quiet_start, r.quiet_end, sorted(caller.roles_at(r.id))) for r in rows
        ]

    async def add_member(self, account_id: str, site_id: str, data: NewMember) -> MemberView:
        check_phone(data.phone)
        async with self.db.begin() as conn:
            await self._require_admin(conn, account_id, site_id)
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        sa.insert(MemberRow).values(
                            site_id=site_id,
                            account_id=data.account_id,
                            role=data.role,
                            name=data.name,
                            phone=data.phone,
                        )
                    )
            except sa_exc.IntegrityError as exc:
                raise MemberExists(f"{data.account_id} is already a {data.role} of this site.") from exc
            await audit(conn, site_id, f"member_added:{data.role}", account_id, self._now_ms())
        return MemberView(data.account_id, data.role, data.name, data.phone)

    async def members(self, account_id: str, site_id: str) -> list[MemberView]:
        async with self.db.engine.connect() as conn:
            await self._require_admin(conn, account_id, site_id)
            rows = (
                await conn.execute(sa.select(MemberRow).where(MemberRow.site_id == site_id).order_by(MemberRow.id))
            ).all()
        return [MemberView(r.account_id, r.role, r.name, r.phone) for r in rows]

    async def audit_trail(self, account_id: str, site_id: str, limit: int = 200) -> list[AuditEntry]:
        """Newest first: who invited, approved, checked in and out (ids and times, no personal data)."""
        async with self.db.engine.connect() as conn:
            await self._require_admin(conn, account_id, site_id)
            rows = (
                await conn.execute(
                    sa.select(AuditRow).where(AuditRow.site_id == site_id).order_by(AuditRow.id.desc()).limit(limit)
                )
            ).all()
        return [AuditEntry(r.action, r.actor_id, to_datetime(r.at_ms), r.visit_id, r.visitor_id) for r in rows]

    async def _require_admin(self, conn: object, account_id: str, site_id: str) -> None:
        caller = await caller_of(conn, account_id)  # type: ignore[arg-type]
        if not caller.roles_at(site_id):
            raise SiteNotFound(f"No site {site_id!r}.")
        if not caller.has(site_id, "admin"):
            raise NotSiteRole("Only the site's admin may do this.")
