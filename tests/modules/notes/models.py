"""SQL tables of the notes module."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base


class NoteRow(Base):
    __tablename__ = "notes_note"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(80), index=True)
    text: Mapped[str] = mapped_column(String(10_000))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
