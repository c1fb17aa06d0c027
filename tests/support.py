"""Test support: a module of routes that exist only in tests, to exercise the core through real requests, and a
fake clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.middleware import DefineMiddleware
from litestar.params import FromQuery, JSONBody
from litestar.response import Stream
from sqlalchemy import text

from bastion.core.dependencies import AppRequest
from bastion.core.edge.asgi import RoutePolicy
from bastion.core.edge.routes import RouteGroup
from bastion.core.errors import Conflict
from bastion.core.idempotency import IdempotencyMiddleware
from bastion.core.module import Module, ModuleParts
from bastion.core.platform import Platform
from bastion.core.principal import Principal
from bastion.core.streaming import sse, until_shutdown


class Echo(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(max_length=20)]
    count: int = 1


_counter = itertools.count(1)
# a pure ASGI middleware class, which Litestar's middleware typing does not describe
_IDEMPOTENT = DefineMiddleware(cast("Any", IdempotencyMiddleware))


@get("/t/slow")
async def slow(seconds: FromQuery[float] = 0.2) -> dict[str, float]:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@post("/t/echo", status_code=200)
async def echo(data: JSONBody[Echo]) -> Echo:
    return data


@post("/t/text", status_code=200)
async def text_body(request: Request[Any, Any, Any]) -> dict[str, int]:
    return {"bytes": len(await request.body())}


@post("/t/big", status_code=200)
async def big(request: Request[Any, Any, Any]) -> dict[str, int]:
    return {"bytes": len(await request.body())}


@get("/t/db")
async def db_probe(platform: NamedDependency[Platform]) -> dict[str, int]:
    async with platform.db.session() as session:
        value = (await session.execute(text("SELECT 1"))).scalar_one()
    return {"db": int(value)}


@get("/t/boom")
async def boom() -> None:
    raise RuntimeError("secret internal detail: password=hunter2")


@get("/t/conflict")
async def conflict() -> None:
    raise Conflict("That already exists.")


@post("/t/idem", status_code=201, middleware=[_IDEMPOTENT])
async def idem(data: JSONBody[Echo]) -> dict[str, Any]:
    return {"name": data.name, "serial": next(_counter)}


@post("/t/idem-fail", status_code=201, middleware=[_IDEMPOTENT])
async def idem_fail(data: JSONBody[Echo]) -> dict[str, Any]:
    raise RuntimeError("fails")


@get("/t/stream")
async def stream(platform: NamedDependency[Platform], interval: FromQuery[float] = 0.05) -> Stream:
    async def ticks() -> AsyncIterator[bytes]:
        for n in itertools.count():
            yield sse(msgspec.json.encode({"tick": n}))
            await asyncio.sleep(interval)

    final = [sse(b'{"error":"server shutting down"}', event="error"), b"data: [DONE]\n\n"]
    return Stream(until_shutdown(ticks(), platform.lifecycle, final), media_type="text/event-stream")


@get("/t/auth")
async def auth_probe() -> dict[str, bool]:
    return {"ok": True}


@get("/t/principal")
async def principal(request: AppRequest) -> Response[dict[str, Any]]:
    found, client = request.principal_or_none, request.context.client
    return Response({"principal": found.rate_key if found else None, "client": client})


@get("/t/loop")
async def event_loop() -> dict[str, str]:
    """The class of the event loop serving this request (``uvloop.Loop`` or the standard library's)."""
    loop = asyncio.get_running_loop()
    return {"loop": f"{type(loop).__module__}.{type(loop).__name__}"}


def _routes(_ctx: object) -> ModuleParts:
    return ModuleParts(
        route_handlers=[
            slow,
            echo,
            text_body,
            big,
            db_probe,
            boom,
            conflict,
            idem,
            idem_fail,
            stream,
            principal,
            auth_probe,
            event_loop,
        ],
        route_groups=[
            RouteGroup("/t/text", RoutePolicy(media_types=("text/plain",))),
            RouteGroup("/t/big", RoutePolicy(max_body_bytes=4 * 1024 * 1024, media_types=())),
            RouteGroup("/t/stream", RoutePolicy(tier=None)),
            RouteGroup("/t/auth", RoutePolicy(tier="auth")),
        ],
    )


class HeaderResolver:
    """Test principal resolver: ``Authorization: Bearer user-<id>`` is user <id>; anything else anonymous."""

    async def __call__(self, scope: Any, ctx: Any) -> Principal | None:
        header = (ctx.authorization or b"").decode()
        if header.startswith("Bearer user-"):
            return Principal(kind="user", id=header.removeprefix("Bearer user-"), roles=frozenset({"user"}))
        return None


routes_module: Module[Any] = Module(name="test", build=_routes)
principal_module: Module[Any] = Module(
    name="test-principals", build=lambda _ctx: ModuleParts(principal_resolver=HeaderResolver())
)


class FakeClock:
    """Time that moves only when a test says so, for code that takes a clock (a callable, or an object with
    ``time``/``monotonic``/``sleep`` such as the job runner's).

        clock = FakeClock()
        store = MemoryStore(clock=clock)           # a callable clock: clock() is now
        runner = JobRunner(jobs, ..., clock=clock)  # sleeps on it
        await clock.sleeping(1)                    # the runner waits for its first due time
        clock.advance(60)                          # ... which has now come

    ``sleep`` returns once ``advance`` has moved the time to its deadline, so a test awaits the event it
    expects instead of sleeping for real.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._changed: asyncio.Event | None = None

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time on and wake every sleeper whose deadline has come."""
        self.now += seconds
        for deadline, waiter in list(self._sleepers):
            if deadline <= self.now and not waiter.done():
                waiter.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)  # still a point where other tasks run, as asyncio.sleep(0) is
            return
        entry = (self.now + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        self._notify()
        try:
            await entry[1]
        finally:
            self._sleepers.remove(entry)
            self._notify()

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock now."""
        return sum(1 for _, waiter in self._sleepers if not waiter.done())

    async def sleeping(self, count: int = 1) -> None:
        """Wait until at least ``count`` tasks sleep on this clock (the code under test has gone idle)."""
        while self.sleepers < count:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None
