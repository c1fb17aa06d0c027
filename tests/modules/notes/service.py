"""Notes as plain async Python: a caller's notes in SQL, and the purge of old ones."""

from __future__ import annotations

import secrets
import time

from sqlalchemy import delete, select

from bastion.core.db import Database
from tests.modules.notes.errors import NoteTooLong
from tests.modules.notes.models import NoteRow
from tests.modules.notes.schemas import NewNote, Note
from tests.modules.notes.settings import NotesSettings


class NotesService:
    def __init__(self, db: Database, *, settings: NotesSettings) -> None:
        self.db = db
        self.settings = settings

    async def add(self, owner: str, note: NewNote) -> Note:
        if len(note.text) > self.settings.max_chars:
            raise NoteTooLong(f"At most {self.settings.max_chars} characters.")
        row = NoteRow(id=secrets.token_hex(16), owner=owner, text=note.text, created_at_ms=int(time.time() * 1000))
        async with self.db.transaction() as session:
            session.add(row)
        return Note(id=row.id, text=row.text, created_at_ms=row.created_at_ms)

    async def list(self, owner: str) -> list[Note]:
        async with self.db.session() as session:
            rows = await session.scalars(select(NoteRow).where(NoteRow.owner == owner).order_by(NoteRow.created_at_ms))
            return [Note(id=r.id, text=r.text, created_at_ms=r.created_at_ms) for r in rows]

    async def purge(self) -> int:
        cutoff = int((time.time() - self.settings.keep_days * 86_400) * 1000)
        async with self.db.begin() as conn:
            gone = await conn.execute(delete(NoteRow).where(NoteRow.created_at_ms < cutoff))
        return gone.rowcount
