"""The messages visits cause, sent only through the messaging module's service, on the caller's connection
(the outbox row commits with the state change or not at all). Quiet hours delay a message to their end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.messaging.errors import ContactOptedOut, ContactSuppressed
from bastion.messaging.schemas import SendMessage, TemplateRef
from bastion.visitors.common import send_time, to_datetime, zone

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from bastion.messaging.service import Messaging
    from bastion.visitors.models import SiteRow
    from bastion.visitors.settings import Templates


class Notifier:
    def __init__(self, messaging: Messaging, templates: Templates) -> None:
        self.messaging = messaging
        self.templates = templates

    def local_time(self, site: SiteRow, ms: int) -> str:
        return to_datetime(ms).astimezone(zone(site.timezone)).strftime("%Y-%m-%d %H:%M")

    async def send(
        self, conn: AsyncConnection, site: SiteRow, to: str, template: str, params: list[str], now_ms: int
    ) -> str | None:
        """Enqueue one template message from the site's owner; returns the message id, or None when the
        recipient opted out of messages (STOP) or WhatsApp suppressed it: the visit goes on without it."""
        due = send_time(now_ms, site.timezone, site.quiet_start, site.quiet_end)
        request = SendMessage(
            to=to,
            template=TemplateRef(template, self.templates.language, params),
            send_at=to_datetime(due) if due > now_ms else None,
        )
        try:
            [message_id] = await self.messaging.enqueue(conn, site.owner_id, request)
        except (ContactOptedOut, ContactSuppressed):
            return None  # refused before it wrote anything: the transaction goes on
        return message_id

    def committed(self) -> None:
        """After the commit: wake the embedded dispatcher (on RabbitMQ the relay picks the rows up)."""
        self.messaging.notify()
