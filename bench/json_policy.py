"""In-process CPU per POST /t/echo (a JSON body through the whole edge and Litestar): the JSON decoding policy
(core/jsonbody.py) against Litestar's own decoder, alternating, three rounds of 3,000 requests each.

    cd <worktree> && nice .venv/bin/python bench/json_policy.py
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, ".")
os.environ["BASTION_LOG_LEVEL"] = "error"

from asgi_lifespan import LifespanManager
from litestar import Request
from tests.support import routes_module

from bastion.app import create_app
from bastion.core.dependencies import AppRequest
from bastion.settings import Settings

BODY = b'{"name":"hello","count":3}'
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/t/echo",
    "raw_path": b"/t/echo",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"localhost"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ],
    "client": ("127.0.0.1", 5000),
    "server": ("127.0.0.1", 8000),
    "state": {},
}


async def run(app: Any, n: int) -> float:
    """CPU microseconds per request over ``n`` requests (after 300 of warm-up)."""
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    for _ in range(300):
        await app(dict(SCOPE), receive, send)
    began = time.process_time()
    for _ in range(n):
        await app(dict(SCOPE), receive, send)
    assert statuses == {200}, statuses
    return (time.process_time() - began) / n * 1e6


async def main() -> None:
    settings = Settings(
        _env_file=None,
        data_dir=pathlib.Path(tempfile.mkdtemp()),
        allowed_hosts=["localhost"],
        security_contact="mailto:a@b.c",
        log_format="json",
        admission={"enabled": False},
    )
    app = create_app(settings, extra_modules=[routes_module])
    policy = AppRequest.json
    async with LifespanManager(app):
        for round_ in range(3):
            AppRequest.json = policy  # type: ignore[method-assign]
            with_policy = await run(app, 3000)
            AppRequest.json = Request.json  # type: ignore[method-assign]
            litestar = await run(app, 3000)
            print(f"round {round_}: policy {with_policy:.1f} us/request, Litestar's decoder {litestar:.1f} us/request")


asyncio.run(main())
