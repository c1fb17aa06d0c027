"""Insert-if-absent on SQLite and PostgreSQL (``INSERT … ON CONFLICT DO NOTHING``): rows that two workers may
create at once (a location's workflows synced by two requests) without a unique-key error for the loser."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bastion.core.db import Base


async def insert_missing(
    session: AsyncSession, dialect: str, model: type[Base], rows: Sequence[dict[str, Any]]
) -> None:
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    statement = (
        postgresql.insert(model).on_conflict_do_nothing()
        if dialect == "postgresql"
        else sqlite.insert(model).on_conflict_do_nothing()
    )
    await session.execute(statement, list(rows))
