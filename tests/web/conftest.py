"""Fixtures for the page: Bastion under a real server (uvicorn, in-process, on a free port) and headless
Debian Chromium driven by Playwright. Screenshots go to ``test-artifacts/web/``."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from bastion.app import Bastion, create_app
from bastion.settings import Settings
from tests.conftest import eventually, free_port, need

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 8}


@dataclass
class LiveServer:
    url: str
    app: Bastion


@pytest.fixture
async def live_server(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    """The embedded default (SQLite) served by uvicorn on 127.0.0.1, limits out of a test's way."""
    settings = make_settings(
        secrets=FAST_ARGON2,
        log_level="warning",
        rate_limits={"general": "10000/minute", "secrets_create": "10000/minute", "secrets_read": "10000/minute"},
    )
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or task.done(), timeout=30)
        assert server.started, "uvicorn did not start"
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)


@dataclass
class Traffic:
    """Every request the browser made, as (method, url, headers, body)."""

    requests: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)

    def record(self, request: Any) -> None:
        body = request.post_data or ""
        self.requests.append((request.method, request.url, dict(request.headers), body))

    def containing(self, needle: str) -> list[str]:
        return [f"{m} {u}" for m, u, h, b in self.requests if needle in u or needle in b or needle in str(h)]


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium; its tests skip loudly without it (and fail under CI=true)."""
    need("chromium", os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    """Headless Chromium driven by Playwright (Playwright's own browser download does not work here)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
def new_page(browser: Any, traffic: Traffic) -> Callable[..., Any]:
    """A page in a fresh context (a separate person), its requests recorded, and failing loudly on any
    script error or Content-Security-Policy violation."""
    problems: list[str] = []

    async def open_page(**context_options: Any) -> Any:
        context = await browser.new_context(**context_options)
        page = await context.new_page()
        page.on("request", traffic.record)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        # An API answering 403/404 is logged by Chromium as "Failed to load resource": expected here.
        page.on(
            "console",
            lambda message: (
                problems.append(f"console {message.type}: {message.text}")
                if message.type in ("error", "warning") and "Failed to load resource" not in message.text
                else None
            ),
        )
        return page

    open_page.problems = problems  # type: ignore[attr-defined]
    return open_page


def screenshot_path(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)
