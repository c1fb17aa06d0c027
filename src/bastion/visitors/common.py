"""Small helpers shared by the visitors services: ids, times in a site's zone, quiet hours, the audit row."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from bastion.core.errors import validation_errors
from bastion.visitors.errors import InvalidVisitorData
from bastion.visitors.models import AuditRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def new_id(now_ms: int) -> str:
    """Time-ordered: 12 hex digits of milliseconds, then 10 random ones (ids sort as created)."""
    return f"{now_ms:012x}{secrets.token_hex(5)}"


def to_datetime(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def to_ms(when: dt.datetime) -> int:
    return int((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp() * 1000)


def invalid(field: str, message: str) -> InvalidVisitorData:
    return InvalidVisitorData(f"{field}: {message}.", extra=validation_errors([{"field": field, "message": message}]))


def check_phone(phone: str | None, field: str = "phone") -> None:
    if phone is not None and not E164.match(phone):
        raise invalid(field, "not an E.164 phone number ('+', country code and number, 8 to 15 digits)")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise invalid("timezone", f"unknown time zone {name!r}") from exc


def local_day(now_ms: int, tz: str) -> tuple[int, int, str]:
    """The site's current day: its start and end (epoch ms) and its date (YYYY-MM-DD)."""
    local = to_datetime(now_ms).astimezone(zone(tz))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + dt.timedelta(days=1)
    return to_ms(start), to_ms(end), start.date().isoformat()


def send_time(now_ms: int, tz: str, quiet_start: str | None, quiet_end: str | None) -> int:
    """When a message due now may go: now, or the end of the site's quiet hours when now is inside them
    (a window may span midnight, e.g. 21:00-08:00)."""
    if not quiet_start or not quiet_end or quiet_start == quiet_end:
        return now_ms
    local = to_datetime(now_ms).astimezone(zone(tz))
    start_h, start_m = map(int, quiet_start.split(":"))
    end_h, end_m = map(int, quiet_end.split(":"))
    minute = local.hour * 60 + local.minute
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return now_ms
    until = local.replace(hour=end_h, minute=end_m, second=0, microsecond=0)
    if until <= local:
        until += dt.timedelta(days=1)
    return to_ms(until)


async def audit(
    conn: AsyncConnection,
    site_id: str,
    action: str,
    actor_id: str,
    at_ms: int,
    *,
    visit_id: str | None = None,
    visitor_id: str | None = None,
) -> None:
    await conn.execute(
        sa.insert(AuditRow).values(
            site_id=site_id, action=action, actor_id=actor_id, at_ms=at_ms, visit_id=visit_id, visitor_id=visitor_id
        )
    )
