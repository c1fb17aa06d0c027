"""The KV routes when PostgreSQL fails under them: a read on a killed pooled connection is retried once on a
fresh one (answered 200, not 503); a partitioned database opens the module's breaker, so requests stop
waiting for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import _admin, serve
from tests.spark.test_kv import get, put
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("kv_app", ["postgres"], indirect=True)
async def test_a_read_on_a_killed_connection_is_retried_on_a_fresh_one(kv_app: Callable[..., Any]) -> None:
    """Every server connection of the app is terminated (a restart or failover); the next read, on a pooled
    connection that is now dead, is answered from a fresh connection."""
    app = kv_app()
    async with serve(app) as http:
        assert (await put(http, "k", '"v"')).status_code in (200, 204)
        database = app.settings.resolved_database_url.rsplit("/", 1)[1]
        server = app.settings.resolved_database_url.rsplit("/", 1)[0] + "/postgres"
        await _admin(
            server,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND application_name = 'bastion'",
        )
        again = await get(http, "k")
    assert again.status_code == 200 and again.text == '"v"'


async def test_a_partitioned_database_opens_the_breaker(make_app: Callable[..., Any], postgres_url: str) -> None:
    """Connections accepted and never answered: the first requests wait for the statement timeout (503), then
    the breaker answers 503 CIRCUIT_OPEN at once."""
    from tests.spark.conftest import spark_principals

    target = urlsplit(postgres_url.replace("+asyncpg", ""))
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = postgres_url.replace(f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{proxy.port}")
    app = make_app(
        database_url=url,
        auto_migrate=True,
        db_timeout_seconds=0.5,
        db_statement_timeout_seconds=0.5,
        rate_limits={"general": "1000/second", "kv": "1000/second"},
        extra=(spark_principals,),
    )
    try:
        async with serve(app) as http:
            assert (await put(http, "k", '"v"')).status_code in (200, 204)
            proxy.partition()
            slow = [await get(http, "k") for _ in range(5)]
            began = time.monotonic()
            fast = await get(http, "k")
            took = time.monotonic() - began
    finally:
        proxy.heal()
        await proxy.stop()
    assert {r.status_code for r in slow} == {503}
    assert fast.status_code == 503 and fast.json()["code"] == "CIRCUIT_OPEN" and took < 0.3
