"""The visitors jobs, declared in the descriptor (run by core's job loop once across the cluster) and each
also at core's ``POST /cron/visitors.<job>`` (``BASTION_CRON_SECRET``). Each one is safe to run twice at once: every
change is a conditional UPDATE (or an INSERT on a unique key) and a message goes only with the row it won.

* ``visitors.reminders``  a reminder to each consenting visitor ``reminder_minutes`` before the visit
* ``visitors.expire``     pending visits whose window ended become ``expired``
* ``visitors.no_shows``   approved visits with no check-in ``no_show_grace_minutes`` after the end: ``no_show``
* ``visitors.digest``     from ``digest_hour`` (site time), once a day, each host gets the day's visitors
* ``visitors.purge``      photos and ID documents of visitors whose last visit ended ``retention_days`` ago
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from bastion.visitors.common import audit, local_day, to_datetime, zone
from bastion.visitors.models import DigestRow, MemberRow, SiteRow, VisitorRow, VisitRow
from bastion.visitors.visits import site_of

if TYPE_CHECKING:
    from bastion.core.db import Database
    from bastion.visitors.files import Files
    from bastion.visitors.notify import Notifier
    from bastion.visitors.settings import VisitorsSettings

SYSTEM = "system"


class VisitorsJobs:
    def __init__(
        self,
        db: Database,
        notifier: Notifier,
        files: Files,
        settings: VisitorsSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.files = files
        self.settings = settings
        self.clock = clock

    def _now(self) -> int:
        return int(self.clock() * 1000)

    async def reminders(self) -> int:
        now = self._now()
        soon = now + self.settings.reminder_minutes * 60_000
        async with self.db.engine.connect() as conn:
            due = (
                (
                    await conn.execute(
                        sa.select(VisitRow.id).where(
                            VisitRow.status == "approved",
                            VisitRow.reminded_at_ms.is_(None),
                            VisitRow.starts_at_ms > now,
                            VisitRow.starts_at_ms <= soon,
                        )
                    )
                )
                .scalars()
                .all()
            )
        sent = 0
        for visit_id in due:
            async with self.db.begin() as conn:
                won = await conn.execute(
                    sa.update(VisitRow)
                    .where(VisitRow.id == visit_id, VisitRow.reminded_at_ms.is_(None), VisitRow.status == "approved")
                    .values(reminded_at_ms=now)
                )
                if won.rowcount != 1:
                    continue  # another instance reminded it
                visit = (await conn.execute(sa.select(VisitRow).where(VisitRow.id == visit_id))).one()
                visitor = (await conn.execute(sa.select(VisitorRow).where(VisitorRow.id == visit.visitor_id))).one()
                if not visitor.phone or visitor.consent_at_ms is None:
                    continue
                site = await site_of(conn, visit.site_id)
                when = self.notifier.local_time(site, visit.starts_at_ms)
                params = [visitor.name or "", site.name, when]
                if await self.notifier.send(conn, site, visitor.phone, self.notifier.templates.reminder, params, now):
                    sent += 1
        if sent:
            self.notifier.committed()
        return sent

    async def expire(self) -> int:
        now = self._now()
        async with self.db.begin() as conn:
            gone = await conn.execute(
                sa.update(VisitRow)
                .where(VisitRow.status == "pending", VisitRow.ends_at_ms < now)
                .values(status="expired", updated_at_ms=now, pass_hash=None)
                .returning(VisitRow.id, VisitRow.site_id)
            )
            rows = gone.all()
            for visit_id, site_id in rows:
                await audit(conn, site_id, "expired", SYSTEM, now, visit_id=visit_id)
        return len(rows)

    async def no_shows(self) -> int:
        now = self._now()
        cutoff = now - self.settings.no_show_grace_minutes * 60_000
        async with self.db.begin() as conn:
            gone = await conn.execute(
                sa.update(VisitRow)
                .where(VisitRow.status == "approved", VisitRow.ends_at_ms < cutoff)
                .values(status="no_show", updated_at_ms=now, pass_hash=None)
                .returning(VisitRow.id, VisitRow.site_id)
            )
            rows = gone.all()
            for visit_id, site_id in rows:
                await audit(conn, site_id, "no_show", SYSTEM, now, visit_id=visit_id)
        return len(rows)

    async def digest(self) -> int:
        """Each host with visits today gets one message listing them (site time, from ``digest_hour``)."""
        now = self._now()
        sent = 0
        async with self.db.engine.connect() as conn:
            sites = (await conn.execute(sa.select(SiteRow.id, SiteRow.timezone))).all()
        for site_id, tz in sites:
            if to_datetime(now).astimezone(zone(tz)).hour < self.settings.digest_hour:
                continue
            start, end, day = local_day(now, tz)
            async with self.db.engine.connect() as conn:
                hosts = (
                    await conn.execute(
                        sa.select(MemberRow.account_id, MemberRow.phone).where(
                            MemberRow.site_id == site_id, MemberRow.role == "host", MemberRow.phone.is_not(None)
                        )
                    )
                ).all()
            for host_id, phone in hosts:
                assert phone is not None  # the query asks for hosts with a phone
                sent += await self._digest_one(site_id, host_id, phone, start, end, day, now)
        if sent:
            self.notifier.committed()
        return sent

    async def _digest_one(
        self, site_id: str, host_id: str, phone: str, start: int, end: int, day: str, now: int
    ) -> int:
        try:
            async with self.db.begin() as conn:
                names = (
                    (
                        await conn.execute(
                            sa.select(VisitorRow.name)
                            .join(VisitRow, VisitRow.visitor_id == VisitorRow.id)
                            .where(
                                VisitRow.site_id == site_id,
                                VisitRow.host_id == host_id,
                                VisitRow.status.in_(("pending", "approved")),
                                VisitRow.starts_at_ms >= start,
                                VisitRow.starts_at_ms < end,
                            )
                            .order_by(VisitRow.starts_at_ms)
                        )
                    )
                    .scalars()
                    .all()
                )
                if not names:
                    return 0
                # the unique key (site, host, day) lets one instance through; the other's INSERT fails
                await conn.execute(
                    sa.insert(DigestRow).values(site_id=site_id, host_id=host_id, day=day, sent_at_ms=now)
                )
                site = await site_of(conn, site_id)
                listed = ", ".join(name or "(erased)" for name in names)
                params = [site.name, str(len(names)), listed[:900]]
                message_id = await self.notifier.send(conn, site, phone, self.notifier.templates.digest, params, now)
        except sa_exc.IntegrityError:
            return 0
        return 1 if message_id else 0

    async def purge(self) -> int:
        """Files of visitors with no visit ending within ``retention_days`` (and created before that)."""
        cutoff = self._now() - self.settings.retention_days * 86_400_000
        recent = sa.select(VisitRow.visitor_id).where(VisitRow.ends_at_ms >= cutoff)
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(VisitorRow.id, VisitorRow.photo_key, VisitorRow.id_document_key).where(
                        sa.or_(VisitorRow.photo_key.is_not(None), VisitorRow.id_document_key.is_not(None)),
                        VisitorRow.created_at_ms < cutoff,
                        VisitorRow.id.not_in(recent),
                    )
                )
            ).all()
        for visitor_id, photo, document in rows:
            for key in (photo, document):
                if key:
                    await self.files.delete(key)
            async with self.db.begin() as conn:
                await conn.execute(
                    sa.update(VisitorRow)
                    .where(VisitorRow.id == visitor_id)
                    .values(photo_key=None, id_document_key=None)
                )
        return len(rows)
