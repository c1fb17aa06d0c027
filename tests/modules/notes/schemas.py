"""API shapes of the notes module."""

from __future__ import annotations

import msgspec


class NewNote(msgspec.Struct, forbid_unknown_fields=True):
    text: str


class Note(msgspec.Struct):
    id: str
    text: str
    created_at_ms: int
