"""Applying Alembic migrations, from ``bastion migrate`` or at start-up of the embedded default.

Every module keeps its migrations on its own branch, labelled with its name, in its own folder
(``Module.migrations``), so modules evolve independently; ``upgrade`` applies all heads of the modules
given (by default :data:`bastion.modules.MODULES`) and the core's own branch.
"""

from __future__ import annotations

import fcntl
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from bastion.core.settings import CoreSettings

MIGRATIONS = Path(__file__).parent / "migrations"
CORE_VERSIONS = MIGRATIONS / "versions"


def _modules(modules: Sequence[Any] | None) -> Sequence[Any]:
    if modules is not None:
        return modules
    from bastion.modules import MODULES

    return MODULES


def import_models(modules: Sequence[Any] | None = None) -> None:
    """Import the core's and every module's SQLAlchemy models (the model registry), so that Alembic sees all
    tables."""
    importlib.import_module("bastion.core.models")
    for module in _modules(modules):
        if module.models:
            importlib.import_module(module.models)


def version_locations(modules: Sequence[Any] | None = None) -> list[Path]:
    """The core's revisions folder and each module's."""
    return [CORE_VERSIONS, *(m.migrations for m in _modules(modules) if m.migrations is not None)]


def alembic_config(url: str, modules: Sequence[Any] | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", ":".join(str(p) for p in version_locations(modules)))
    config.attributes["url"] = url
    config.attributes["modules"] = _modules(modules)
    return config


def upgrade(settings: CoreSettings, modules: Sequence[Any] | None = None, revision: str = "heads") -> None:
    """Bring the database to ``revision`` (all heads). Safe to run from several processes at once:
    SQLite takes a file lock in DATA_DIR, PostgreSQL an advisory lock inside the migration."""
    url = settings.resolved_database_url
    config = alembic_config(url, modules)
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


def new_revision(url: str, module: Any, message: str, *, autogenerate: bool) -> None:
    """A new revision on ``module``'s branch, in its folder; its first one starts the branch."""
    from alembic.script import ScriptDirectory

    if module.migrations is None:
        raise ValueError(f"module {module.name!r} declares no migrations folder")
    config = alembic_config(url)
    module.migrations.mkdir(parents=True, exist_ok=True)
    scripts = ScriptDirectory.from_config(config)
    started = any(module.name in (s.branch_labels or ()) for s in scripts.walk_revisions())
    command.revision(
        config,
        message=message,
        autogenerate=autogenerate,
        head=f"{module.name}@head" if started else "base",
        branch_label=None if started else module.name,
        version_path=str(module.migrations),
    )
