"""Pagination: one bounded ``limit``/``offset`` pair for every list endpoint.

    from bastion.core.pagination import Limit, Offset, Page, limit_param

    @get("/api/things")
    async def things(request: AppRequest, things: NamedDependency[ThingService],
                     limit: Limit = 50, offset: Offset = 0) -> list[Thing]:
        return await things.list(Page(limit, offset))

    # a route with a lower maximum
    async def recent(..., limit: Annotated[int, limit_param(200)] = 20) -> list[Run]: ...

    # in the service
    rows = await session.scalars(page.apply(select(Thing).order_by(Thing.created_at, Thing.id)))

Both query parameters are bounded in the OpenAPI document and by validation alike: ``limit`` from 1 to
:data:`MAX_LIMIT` (a route may lower its own maximum with :func:`limit_param`), ``offset`` from 0 to
:data:`MAX_OFFSET`. A value outside (negative, twenty digits, not a number) is a 422
``VALIDATION_FAILED`` problem before any query runs; without the bound a negative offset was a
PostgreSQL error and a 20-digit one an overflow in the driver, both 500s. Deep offsets make the
database skip that many rows on every page, hence the cap; a list that can grow past it wants a keyset
cursor (``WHERE (created_at, id) > (:last_created_at, :last_id)``) instead. Order by a unique key
(e.g. ``created_at, id``) so pages do not overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from litestar.params import QueryParameter

__all__ = ["MAX_LIMIT", "MAX_OFFSET", "Limit", "Offset", "Page", "limit_param"]

MAX_LIMIT = 500
MAX_OFFSET = 100_000

Offset = Annotated[
    int, QueryParameter(ge=0, le=MAX_OFFSET, description="How many items to skip (newest or oldest first).")
]

_Select = TypeVar("_Select")


def limit_param(maximum: int) -> Any:
    """The ``limit`` query parameter's definition, bounded by ``maximum`` (at most :data:`MAX_LIMIT`)."""
    if not 1 <= maximum <= MAX_LIMIT:
        raise ValueError(f"a page holds 1 to {MAX_LIMIT} items, not {maximum}")
    return QueryParameter(ge=1, le=maximum, description="How many items, at most.")


Limit = Annotated[int, limit_param(MAX_LIMIT)]


@dataclass(frozen=True, slots=True)
class Page:
    """One page: ``limit`` items after skipping ``offset`` (checked again here for callers that are not routes)."""

    limit: int
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT or not 0 <= self.offset <= MAX_OFFSET:
            raise ValueError(f"page out of bounds: limit={self.limit} offset={self.offset}")

    def apply(self, statement: _Select) -> _Select:
        """``statement`` (a SQLAlchemy ``Select``) limited to this page."""
        limited: _Select = statement.limit(self.limit).offset(self.offset)  # type: ignore[attr-defined]
        return limited

    def slice(self, items: list[_Select]) -> list[_Select]:
        """This page of a list already in memory."""
        return items[self.offset : self.offset + self.limit]
