"""Migrations: every listed module's branch applies, and the migrated schema is exactly what the models say."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import bastion.migrate as migrate
from bastion.core.db import Base, create_engine
from bastion.settings import Settings


def _test_only_tables() -> set[str]:
    """Tables of modules built only in the tests (``tests/modules/notes``): the shared metadata holds them once
    such a test has run in this session, but no listed module migrates them."""
    return {
        str(getattr(m.local_table, "name", ""))
        for m in Base.registry.mappers
        if m.class_.__module__.startswith("tests.")
    }


def _drift(connection: Any) -> list[Any]:
    skip = _test_only_tables()

    def include(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if kind == "table" else getattr(obj, "table", None)
        return getattr(table, "name", None) not in skip

    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": include})
    return list(compare_metadata(context, Base.metadata))


async def _drift_after_migrating(settings: Settings) -> list[Any]:
    await asyncio.to_thread(migrate.upgrade, settings)
    migrate.import_models()
    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_drift)
    finally:
        await engine.dispose()


async def test_the_migrated_sqlite_schema_matches_the_models(tmp_path: Path):
    """After ``bastion migrate`` on an empty SQLite file, Alembic finds nothing between the models and the tables
    (a model changed without its migration fails here)."""
    assert await _drift_after_migrating(Settings(_env_file=None, data_dir=tmp_path)) == []


async def test_the_migrated_postgresql_schema_matches_the_models(tmp_path: Path, postgres_url: str):
    """The same on an empty PostgreSQL database."""
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=postgres_url)
    assert await _drift_after_migrating(settings) == []
