"""HTTP routes of the notes module: thin handlers over NotesService, keyed on the caller's address."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from tests.modules.notes.schemas import NewNote, Note
from tests.modules.notes.service import NotesService


def _owner(request: Request[Any, Any, Any]) -> str:
    return "ip:" + (request.client.host if request.client else "unknown")


@post("/api/notes", status_code=201)
async def add_note(
    request: Request[Any, Any, Any], data: JSONBody[NewNote], notes: NamedDependency[NotesService]
) -> Note:
    return await notes.add(_owner(request), data)


@get("/api/notes")
async def list_notes(request: Request[Any, Any, Any], notes: NamedDependency[NotesService]) -> list[Note]:
    return await notes.list(_owner(request))


route_handlers = [add_note, list_notes]
