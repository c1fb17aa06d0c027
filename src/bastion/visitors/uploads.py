"""Photos and ID documents: size cap, type by content, re-encoded without metadata, served only to those who
may see the visitor.

The type is what Pillow reads in the bytes (JPEG, PNG or WebP), never the file name or the declared type.
Every image is decoded and encoded again (JPEG, quality 90, orientation applied): the new file carries no
EXIF, GPS, XMP or comment that was in the upload. Decoding runs in a thread (it is CPU work).
"""

from __future__ import annotations

import asyncio
import io
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from bastion.visitors.access import caller_of
from bastion.visitors.common import audit
from bastion.visitors.errors import UploadNotFound, UploadTooLarge, UploadTypeRefused, VisitorNotFound
from bastion.visitors.models import VisitorRow
from bastion.visitors.people import visible_visitors

if TYPE_CHECKING:
    from bastion.core.db import Database
    from bastion.visitors.files import Files
    from bastion.visitors.settings import VisitorsSettings

Kind = Literal["photo", "id_document"]
ACCEPTED = {"JPEG", "PNG", "WEBP"}
COLUMN = {"photo": VisitorRow.photo_key, "id_document": VisitorRow.id_document_key}


def reencode(data: bytes, max_pixels: int) -> bytes:
    """The image in ``data`` as a fresh JPEG with no metadata; :class:`UploadTypeRefused` if it is none.
    Pillow is imported with the first upload, not by every worker at start-up."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in ACCEPTED:
                raise UploadTypeRefused(f"Accepted: JPEG, PNG or WebP images (this is {probe.format or 'unknown'}).")
            if probe.width * probe.height > max_pixels:
                raise UploadTypeRefused(f"At most {max_pixels} pixels.")
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            upright = ImageOps.exif_transpose(image)
            clean = Image.new("RGB", upright.size)
            clean.paste(upright.convert("RGB"))  # pixels only: no info dict, EXIF or ICC carried over
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UploadTypeRefused("The file is not a readable JPEG, PNG or WebP image.") from exc
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=90)
    return out.getvalue()


class Uploads:
    def __init__(
        self, db: Database, files: Files, settings: VisitorsSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.files = files
        self.settings = settings
        self.clock = clock

    async def put(self, account_id: str, visitor_id: str, kind: Kind, data: bytes) -> None:
        if len(data) > self.settings.max_upload_bytes:
            raise UploadTooLarge(f"At most {self.settings.max_upload_bytes} bytes.")
        site_id, old = await self._key(account_id, visitor_id, kind)
        clean = await asyncio.to_thread(reencode, data, self.settings.max_pixels)
        key = f"{site_id}/{visitor_id}/{kind}-{secrets.token_hex(8)}.jpg"
        await self.files.put(key, clean)
        now = int(self.clock() * 1000)
        async with self.db.begin() as conn:
            stored = await conn.execute(
                sa.update(VisitorRow)
                .where(VisitorRow.id == visitor_id, VisitorRow.erased_at_ms.is_(None))
                .values({COLUMN[kind]: key})
            )
            if stored.rowcount == 1:
                await audit(conn, site_id, f"{kind}_uploaded", account_id, now, visitor_id=visitor_id)
        if stored.rowcount != 1:  # erased meanwhile: the file must not outlive the erasure
            await self.files.delete(key)
            raise VisitorNotFound(f"No visitor {visitor_id!r}.")
        if old:
            await self.files.delete(old)

    async def get(self, account_id: str, visitor_id: str, kind: Kind) -> bytes:
        _, key = await self._key(account_id, visitor_id, kind)
        data = await self.files.get(key) if key else None
        if data is None:
            raise UploadNotFound(f"This visitor has no {kind.replace('_', ' ')}.")
        return data

    async def _key(self, account_id: str, visitor_id: str, kind: Kind) -> tuple[str, str | None]:
        async with self.db.engine.connect() as conn:
            caller = await caller_of(conn, account_id)
            row = (
                await conn.execute(
                    sa.select(VisitorRow.site_id, COLUMN[kind], VisitorRow.erased_at_ms).where(
                        VisitorRow.id == visitor_id, visible_visitors(caller)
                    )
                )
            ).first()
        if row is None or row[2] is not None:
            raise VisitorNotFound(f"No visitor {visitor_id!r}.")
        return row[0], row[1]
