"""Hosted Spark apps: which app a host name is, from settings and from the database.

    registry = AppRegistry(platform.db, settings.spark)
    await registry.refresh()                        # at start-up, then every ``apps_refresh_seconds``
    app = registry.find(b"notes.example.com:443")   # HostedApp | None (the port is ignored)
    await registry.add("notes", host="notes.example.com", dist=Path("dist"), public=False)   # the CLI

Where the registry lives: ``bastion spark add`` writes a row in the database, so one command registers an
app for every worker and every instance of a Bastion (they re-read the table every few seconds) and
survives restarts with no file to edit on each host. ``BASTION_SPARK__APPS`` declares apps in settings
instead (for deployments configured from the environment); on a name or host given in both, settings win.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from bastion.core import logging as core_logging
from bastion.core.db import Database
from bastion.core.errors import Conflict, ValidationFailed
from bastion.spark.models import HostedApp as HostedAppRow
from bastion.spark.settings import HostedAppSettings, SparkSettings

_log = core_logging.get_logger("bastion.spark")


@dataclass(frozen=True, slots=True)
class HostedApp:
    name: str
    host: str
    dist: Path
    """Resolved (symbolic links followed): files are served only from under it."""
    public: bool


def _app(name: str, host: str, dist: Path, public: bool) -> HostedApp:
    return HostedApp(name=name, host=host.lower(), dist=Path(dist).resolve(), public=public)


def check_dist(dist: Path) -> Path:
    """A built app's folder: it exists and holds ``index.html``."""
    resolved = Path(dist).expanduser().resolve()
    if not (resolved / "index.html").is_file():
        raise ValidationFailed(f"{resolved} has no index.html; give the folder of the built app (vite build's dist/).")
    return resolved


def host_of(header: bytes) -> str:
    """The host name of a ``Host`` header, without the port, lower-case."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text.partition("]")[0] + "]"
    return text.rpartition(":")[0] if ":" in text else text


class AppRegistry:
    def __init__(self, db: Database, settings: SparkSettings) -> None:
        self.db = db
        self._configured = [_app(a.name, a.host, a.dist, a.public) for a in settings.apps]
        self._by_host = {a.host: a for a in self._configured}

    def find(self, host_header: bytes) -> HostedApp | None:
        return self._by_host.get(host_of(host_header)) if self._by_host else None

    def apps(self) -> list[HostedApp]:
        return sorted(self._by_host.values(), key=lambda a: a.name)

    async def refresh(self) -> int:
        """Re-read the apps kept in the database; how many apps are served. While the table cannot be read
        (the database is down, or not migrated yet) the apps already known are kept: start-up goes on."""
        try:
            async with self.db.session() as session:
                rows = (await session.scalars(select(HostedAppRow))).all()
        except SQLAlchemyError as exc:
            _log.warning("hosted apps not re-read", error=type(exc).__name__)
            return len(self._by_host)
        names = {a.name for a in self._configured}
        hosts = {a.host for a in self._configured}
        found = {a.host: a for a in self._configured}
        for row in rows:
            if row.name not in names and row.host not in hosts:
                found[row.host] = _app(row.name, row.host, Path(row.dist), row.public)
        self._by_host = found
        return len(found)

    async def add(self, name: str, *, host: str, dist: Path, public: bool, replace: bool = False) -> HostedApp:
        """Register (or with ``replace``, re-register) an app; its name and host must be free."""
        spec = HostedAppSettings(name=name, host=host, dist=check_dist(dist), public=public)
        await self.refresh()
        for known in self._configured:
            if spec.name == known.name or spec.host == known.host:
                raise Conflict(f"{known.name} ({known.host}) is declared in BASTION_SPARK__APPS; change it there.")
        async with self.db.transaction() as session:
            taken = await session.scalar(
                select(HostedAppRow).where((HostedAppRow.host == spec.host) | (HostedAppRow.name == spec.name))
            )
            if taken is not None and not (replace and taken.name == spec.name):
                raise Conflict(f"The app {taken.name} is served on {taken.host}; choose another name and host.")
            if taken is not None:
                await session.delete(taken)
                await session.flush()
            session.add(
                HostedAppRow(
                    name=spec.name,
                    host=spec.host,
                    dist=str(spec.dist),
                    public=spec.public,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
        await self.refresh()
        return _app(spec.name, spec.host, spec.dist, spec.public)

    async def remove(self, name: str) -> bool:
        async with self.db.transaction() as session:
            gone = await session.execute(delete(HostedAppRow).where(HostedAppRow.name == name))
        await self.refresh()
        return bool(getattr(gone, "rowcount", 0))
