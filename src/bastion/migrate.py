"""Applying Alembic migrations, from ``bastion migrate`` or at start-up of the embedded default.

Every module keeps its migrations on its own branch (``branch_labels=("spark",)``), so modules
evolve independently; ``upgrade`` applies all heads.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config

from bastion.core.settings import CoreSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade(settings: CoreSettings, revision: str = "heads") -> None:
    """Bring the database to ``revision`` (all heads). Safe to run from several processes at once:
    SQLite takes a file lock in DATA_DIR, PostgreSQL an advisory lock inside the migration."""
    url = settings.resolved_database_url
    config = alembic_config(url)
    if not settings.uses_sqlite:
        command.upgrade(config, revision)
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / ".migrate.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            command.upgrade(config, revision)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
