"""When keys were last used and users last seen: recorded per request as a dict write, written in batches.

last_used = LastUsed(platform.db)
last_used.touch(principal, time.time())     # on every authenticated request (the resolver)
await last_used.flush()                     # every ``touch_interval_seconds``, and at shutdown
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from bastion.core.db import Database
from bastion.core.principal import Principal
from bastion.identity.events import log
from bastion.identity.models import ApiKey, User


def _stamp(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


class LastUsed:
    """``max_pending``: the most keys and the most users held between two flushes (per worker). Past it a
    new one is not recorded until the next flush (the times are advisory: a missed one is written at the
    credential's next use), so a flood of distinct credentials cannot grow the worker's memory."""

    def __init__(self, db: Database, *, max_pending: int = 100_000) -> None:
        self.db = db
        self.max_pending = max_pending
        self._keys: dict[str, float] = {}
        self._users: dict[str, float] = {}

    def touch(self, principal: Principal, now: float) -> None:
        """Record use (a dict write); written to the database by the next :meth:`flush`."""
        if principal.kind == "api_key":
            held = self._keys
        elif principal.kind == "user":
            held = self._users
        else:
            return
        if len(held) < self.max_pending or principal.id in held:
            held[principal.id] = now

    async def flush(self) -> None:
        keys, self._keys = self._keys, {}
        users, self._users = self._users, {}
        if not keys and not users:
            return
        try:
            async with self.db.transaction() as session:
                if keys:  # ORM bulk UPDATE by primary key: one executemany per table
                    await session.execute(
                        update(ApiKey), [{"id": k, "last_used_at": _stamp(t)} for k, t in keys.items()]
                    )
                if users:
                    await session.execute(
                        update(User), [{"id": u, "last_seen_at": _stamp(t)} for u, t in users.items()]
                    )
        except Exception as exc:  # last-used times are advisory: a failed batch is dropped, not retried forever
            log.warning("last-used times not written", error=type(exc).__name__, keys=len(keys), users=len(users))
