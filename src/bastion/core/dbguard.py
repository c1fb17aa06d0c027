"""A module's database paths behind its own circuit breaker, and a read retried once on a fresh connection.

    guard = DatabaseGuard("spark")
    rows = await guard.read(lambda: load(...))      # breaker; one retry if the pooled connection was dead
    await guard.write(lambda: store(...))           # breaker only: a write is not repeated

Without a breaker, a database that accepts connections and never answers (a partition, a hung failover)
costs every request the full ``DB_TIMEOUT_SECONDS`` before its 503. With one, ``failure_threshold``
consecutive outages open it and the next requests are answered 503 ``CIRCUIT_OPEN`` (with Retry-After) at
once, until a trial call after ``reset_timeout`` finds the database back.

A read that fails because its pooled connection was killed (a database restart or failover:
``connection_invalidated`` on SQLAlchemy's error, which discarded the connection) is repeated once, on a
fresh connection from the pool; a second failure is the outage it looks like. Writes are not repeated
here: only a write the caller knows to be idempotent should be, and then by passing it to ``read``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy.exc as sa_exc

from bastion.core.db import unavailable
from bastion.core.logging import get_logger
from bastion.core.resilience.breaker import CircuitBreaker

__all__ = ["DatabaseGuard"]

T = TypeVar("T")
log = get_logger("bastion.db")


def _is_outage(exc: BaseException) -> bool:
    return unavailable(exc) is not None


def _timed_out(exc: sa_exc.DBAPIError) -> bool:
    return isinstance(exc.orig, TimeoutError) or "timeout" in type(exc.orig).__name__.lower()


class DatabaseGuard:
    def __init__(self, name: str, *, failure_threshold: int = 5, reset_timeout: float = 5.0) -> None:
        self.breaker = CircuitBreaker(
            f"db-{name}", failure_threshold=failure_threshold, reset_timeout=reset_timeout, is_failure=_is_outage
        )

    async def read(self, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation()`` under the breaker, repeated once if its connection turned out to be dead."""
        async with self.breaker:
            try:
                return await operation()
            except sa_exc.DBAPIError as exc:
                if not exc.connection_invalidated or _timed_out(exc):
                    raise  # a database that does not answer will not answer a second time either
                log.warning("database connection lost; read retried on a fresh connection", breaker=self.breaker.name)
            return await operation()

    async def write(self, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation()`` under the breaker (not repeated)."""
        async with self.breaker:
            return await operation()
