"""Contacts (with consent and opt-out state) and templates (language, parameter count), owned by the
signed-in account: a user sees its own, an admin everyone's."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from bastion.messaging.errors import TemplateExists
from bastion.messaging.models import ContactRow, TemplateRow
from bastion.messaging.schemas import ContactView, NewContact, NewTemplate, TemplateView
from bastion.messaging.service import check_phone, last_inbound_ms, to_datetime

if TYPE_CHECKING:
    from bastion.core.db import Database
    from bastion.messaging.settings import MessagingSettings


class Directory:
    def __init__(self, db: Database, settings: MessagingSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def add_contact(self, owner_id: str, new: NewContact) -> ContactView:
        check_phone(new.phone, "phone")
        now = self._now_ms()
        consent = int(new.consent_at.timestamp() * 1000) if new.consent_at else None
        async with self.db.begin() as conn:
            existing = (
                await conn.execute(
                    sa.select(ContactRow.id).where(ContactRow.owner_id == owner_id, ContactRow.phone == new.phone)
                )
            ).scalar()
            values = {"name": new.name, "consent_at_ms": consent, "consent_source": new.consent_source}
            if existing is None:
                await conn.execute(
                    sa.insert(ContactRow).values(
                        id=secrets.token_hex(8), owner_id=owner_id, phone=new.phone, created_at_ms=now, **values
                    )
                )
            else:
                await conn.execute(sa.update(ContactRow).where(ContactRow.id == existing).values(**values))
        return (await self.contacts(owner_id, phone=new.phone))[0]

    async def contacts(self, owner_id: str | None, *, phone: str | None = None) -> list[ContactView]:
        query = sa.select(ContactRow).order_by(ContactRow.created_at_ms)
        if owner_id is not None:
            query = query.where(ContactRow.owner_id == owner_id)
        if phone is not None:
            query = query.where(ContactRow.phone == phone)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query.limit(1000))).all()
            views = []
            for row in rows:
                last = await last_inbound_ms(conn, row.phone)
                window = last + int(self.settings.window_hours * 3_600_000) if last is not None else None
                views.append(
                    ContactView(
                        id=row.id,
                        phone=row.phone,
                        name=row.name,
                        consent_at=to_datetime(row.consent_at_ms) if row.consent_at_ms else None,
                        consent_source=row.consent_source,
                        opted_out=row.opted_out_at_ms is not None,
                        suppressed_code=row.suppressed_code,
                        window_open_until=to_datetime(window) if window else None,
                    )
                )
        return views

    async def add_template(self, owner_id: str, new: NewTemplate) -> TemplateView:
        template_id = secrets.token_hex(8)
        try:
            async with self.db.begin() as conn:
                await conn.execute(
                    sa.insert(TemplateRow).values(
                        id=template_id,
                        owner_id=owner_id,
                        name=new.name,
                        language=new.language,
                        param_count=new.param_count,
                        created_at_ms=self._now_ms(),
                    )
                )
        except sa_exc.IntegrityError:
            raise TemplateExists(f"Template {new.name!r} ({new.language}) is already registered.") from None
        return TemplateView(template_id, new.name, new.language, new.param_count)

    async def templates(self, owner_id: str | None) -> list[TemplateView]:
        query = sa.select(TemplateRow.id, TemplateRow.name, TemplateRow.language, TemplateRow.param_count)
        if owner_id is not None:
            query = query.where(TemplateRow.owner_id == owner_id)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(TemplateRow.name).limit(1000))).all()
        return [TemplateView(*row) for row in rows]
