"""A fast store that opens a span per call (``BASTION_OTEL__TRACE_STORE``, on with tracing): the operation and the
backend, never the key (keys hold claim ids and nonces)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from bastion.core.stores import Store

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from bastion.core.observability.tracing import Tracing


class TracedStore:
    def __init__(self, inner: Store, tracing: Tracing, system: str) -> None:
        self._inner = inner
        self._tracing = tracing
        self._system = system

    def _span(self, operation: str) -> AbstractContextManager[Span]:
        attributes = {"db.system.name": self._system, "db.operation.name": operation}
        return self._tracing.span(f"store {operation}", attributes)

    async def get(self, key: str) -> bytes | None:
        with self._span("get"):
            return await self._inner.get(key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with self._span("set"):
            await self._inner.set(key, value, ttl)

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        with self._span("set_if_absent"):
            return await self._inner.set_if_absent(key, value, ttl)

    async def replace(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        with self._span("replace"):
            return await self._inner.replace(key, value, ttl)

    async def delete(self, key: str) -> bool:
        with self._span("delete"):
            return await self._inner.delete(key)

    async def get_and_delete(self, key: str) -> bytes | None:
        with self._span("get_and_delete"):
            return await self._inner.get_and_delete(key)

    async def increment(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with self._span("increment"):
            return await self._inner.increment(key, amount, ttl)

    async def ttl(self, key: str) -> float | None:
        with self._span("ttl"):
            return await self._inner.ttl(key)

    def namespaced(self, prefix: str) -> Store:
        return TracedStore(self._inner.namespaced(prefix), self._tracing, self._system)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
