"""In-process per-request cost of an ASGI app (no server, no sockets): a profiling aid for the edge.

    uv run python bench/inproc.py bench.apps.bastion_hello:app [--profile]
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib
import pstats
import sys
import time


def load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


async def run(app, n: int) -> float:
    scope_base = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                  "scheme": "http", "path": "/hello", "raw_path": b"/hello", "query_string": b"", "root_path": "",
                  "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
                  "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": {}}

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
    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope_base), receive, send)
    elapsed = time.perf_counter() - start
    await queue.put({"type": "lifespan.shutdown"})
    await task
    return elapsed / n * 1e6


def main() -> None:
    app = load(sys.argv[1])
    n = 20000
    if "--profile" in sys.argv:
        prof = cProfile.Profile()
        prof.enable()
        us = asyncio.run(run(app, n))
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    else:
        us = asyncio.run(run(app, n))
    print(f"{us:.1f} us/request")


if __name__ == "__main__":
    main()
