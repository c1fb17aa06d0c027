"""The pass as the visitor holds it: ``GET /passes/{visit_id}/{code}`` answers the QR code (PNG) a guard's
device scans. The link is what the pass message carries when ``BASTION_VISITORS__PASS_URL`` is set.

The QR code holds ``<visit_id>.<code>``, which is what ``POST /api/visits/{visit_id}/check-in`` needs. The route
needs no sign-in (the code is the credential, 128 random bits, compared as a SHA-256 digest in constant time)
and answers 404 for a wrong code, or a pass that is no longer usable (cancelled, used up, past its end).
"""

from __future__ import annotations

import hmac
import io
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bastion.visitors.errors import VisitNotFound
from bastion.visitors.models import VisitRow
from bastion.visitors.visits import pass_hash

if TYPE_CHECKING:
    from bastion.core.db import Database

USABLE = ("approved", "checked_in")


def qr_payload(visit_id: str, code: str) -> str:
    return f"{visit_id}.{code}"


def qr_png(payload: str, scale: int = 8) -> bytes:
    import segno  # with the first QR code: 7 MB a worker otherwise (measured 2026-12-03)

    out = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


class Passes:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def qr(self, visit_id: str, code: str) -> bytes:
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(VisitRow.pass_hash, VisitRow.status, VisitRow.ends_at_ms).where(VisitRow.id == visit_id)
                )
            ).first()
        usable = (
            row is not None
            and row[0] is not None
            and hmac.compare_digest(row[0], pass_hash(code))
            and row[1] in USABLE
            and int(self.clock() * 1000) <= row[2]
        )
        if not usable:
            raise VisitNotFound("No such pass, or it can no longer be used.")
        return qr_png(qr_payload(visit_id, code))
