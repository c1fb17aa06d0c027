"""In-process per-request cost of an ASGI app (no server, no sockets): a profiling aid for the edge.

    cd bench/apps && PYTHONPATH=.:../../../shared/peers uv run python ../inproc.py bastion_hello:app \
        [--profile | --layers] [--cpu]

``--layers`` (a Bastion app) times the request entering at each stage of the edge in turn, from the outermost
(request context) to Litestar itself, so that the difference between two lines is what that stage costs.
Stages below the context one get a fresh request context each time, as the context stage would make. Set
the ``BASTION_*`` variables as bench/run.py does (production, JSON log) and send stdout to /dev/null, or the
development console log is what gets measured. ``--cpu`` measures the process's CPU time (all its threads, an
exporter's included) instead of the wall clock, which on a loaded machine swings twofold from run to run.
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib
import pstats
import sys
import time

_clock = time.perf_counter


def load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


async def run(app, n: int) -> float:
    scope_base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hello",
        "raw_path": b"/hello",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        return None

    # lifespan startup
    queue: asyncio.Queue = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    sent: list = []

    async def lreceive():
        return await queue.get()

    async def lsend(message):
        sent.append(message)

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, lreceive, lsend))
    while not sent:
        await asyncio.sleep(0.01)
    for _ in range(2000):
        await app(dict(scope_base), receive, send)
    start = _clock()
    for _ in range(n):
        await app(dict(scope_base), receive, send)
    elapsed = _clock() - start
    await queue.put({"type": "lifespan.shutdown"})
    await task
    return elapsed / n * 1e6


class Entering:
    """Requests enter ``stage`` (part of ``app``'s edge) directly; the lifespan still goes to ``app``."""

    def __init__(self, app, stage) -> None:
        self.app, self.stage = app, stage

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        from bastion.core.edge.asgi import CONTEXT_KEY, RequestContext

        scope[CONTEXT_KEY] = RequestContext(
            "0" * 22, time.perf_counter(), "127.0.0.1", "127.0.0.1", host=b"127.0.0.1:8000"
        )
        return await self.stage(scope, receive, send)


def layers(app, n: int) -> None:
    stages, stage = [], app._asgi
    while stage is not None:
        stages.append(stage)
        stage = getattr(stage, "app", None)

    async def each() -> None:
        for i, stage in enumerate(stages):
            us = await run(app if i == 0 else Entering(app, stage), n)
            print(f"{type(stage).__name__:28s} {us:6.1f} us/request", file=sys.stderr)

    asyncio.run(each())


def main() -> None:
    global _clock
    if "--cpu" in sys.argv:
        _clock = time.process_time
    app = load(sys.argv[1])
    n = 20000
    if "--layers" in sys.argv:
        layers(app, n)
        return
    if "--profile" in sys.argv:
        prof = cProfile.Profile()
        prof.enable()
        us = asyncio.run(run(app, n))
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    else:
        us = asyncio.run(run(app, n))
    print(f"{us:.1f} us/request", file=sys.stderr)


if __name__ == "__main__":
    main()
