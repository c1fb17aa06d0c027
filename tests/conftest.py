"""Shared fixtures: real PostgreSQL and Redis, settings isolated from the developer's environment, and
apps run through their lifespan with an httpx client.

PostgreSQL and Redis are the local servers at their standard ports (override with
``BASTION_TEST_POSTGRES_URL`` / ``BASTION_TEST_REDIS_URL``). When one is unreachable its tests skip
with a loud reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import stamina
from asgi_lifespan import LifespanManager

# Tests build their settings explicitly; nothing from the shell may leak in.
for _name in [n for n in os.environ if n.startswith("BASTION_") and not n.startswith("BASTION_TEST_")]:
    del os.environ[_name]
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from bastion.app import Bastion, create_app  # noqa: E402
from bastion.core import logging as core_logging  # noqa: E402
from bastion.core.module import Module  # noqa: E402
from bastion.settings import Settings  # noqa: E402

CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_URL = os.environ.get("BASTION_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("BASTION_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
TEST_CLIENT = ("198.51.100.7", 40000)


def need(service: str, reachable: bool, how: str) -> None:
    """Skip (or, under CI=true, fail) when a real service the test needs is not reachable."""
    if reachable:
        return
    message = f"*** {service} is NOT reachable ({how}); its tests cannot run ***"
    if CI:
        pytest.fail(message + " -- CI=true requires it")
    pytest.skip(message)


def _tcp_open(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _no_retry_waits() -> Iterator[None]:
    stamina.set_testing(True, attempts=3)
    yield
    stamina.set_testing(False)


@pytest.fixture(scope="session")
def redis_url() -> str:
    need("Redis", _tcp_open(REDIS_URL, 6379), REDIS_URL)
    return REDIS_URL


@pytest.fixture(scope="session")
def amqp_url() -> str:
    need("RabbitMQ", _tcp_open(AMQP_URL.replace("amqp://", "http://"), 5672), AMQP_URL)
    return AMQP_URL


@pytest.fixture(scope="session")
def postgres_server() -> str:
    need("PostgreSQL", _tcp_open(POSTGRES_URL, 5432), POSTGRES_URL)
    return POSTGRES_URL


async def _admin(url: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    parts = urlsplit(url.replace("+asyncpg", ""))
    conn = await asyncpg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        database=parts.path.lstrip("/") or "postgres",
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A fresh, empty database on the real server for this test, dropped afterwards."""
    name = f"bastion_t_{uuid.uuid4().hex[:12]}"
    await _admin(postgres_server, f'CREATE DATABASE "{name}"')
    base = postgres_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        await _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test: a private data dir and Redis namespace, overridable per test."""
    prefix = f"t{uuid.uuid4().hex[:10]}:"

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "development",
            "data_dir": tmp_path / "data",
            "allowed_hosts": ["localhost", "127.0.0.1", "testserver"],
            "security_contact": "mailto:security@example.com",
            "redis_prefix": prefix,
            "log_format": "json",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return build


@asynccontextmanager
async def serve(
    app: Bastion, client: tuple[str, int] = TEST_CLIENT, base_url: str = "http://localhost"
) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` through its lifespan and give an httpx client calling it in-process."""
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Callable[..., Bastion]:
    from tests.support import routes_module

    def build(
        settings: Settings | None = None, extra: tuple[Module[Any], ...] = (routes_module,), **overrides: Any
    ) -> Bastion:
        return create_app(settings or make_settings(**overrides), extra_modules=extra)

    return build


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Callable[[], list[dict[str, Any]]]:
    """The JSON log lines written so far (apps built in the test log to the captured stdout)."""
    import json

    def read() -> list[dict[str, Any]]:
        core_logging.flush()
        out = capsys.readouterr().out
        lines = []
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{"):
                lines.append(json.loads(line))
        read.seen.extend(lines)  # type: ignore[attr-defined]
        return list(read.seen)  # type: ignore[attr-defined]

    read.seen = []  # type: ignore[attr-defined]
    return read


async def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns a truthy value (for effects in another process)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


class PrivateRedis:
    """A redis-server of our own on a free port, which a test may stop and start again."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import subprocess
        import time

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    import shutil

    need("redis-server binary", shutil.which("redis-server") is not None, "redis-server not on PATH")
    server = PrivateRedis(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
