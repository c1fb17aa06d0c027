"""Property-based API test: schemathesis over Bastion's own OpenAPI document, against a served instance.

Every operation is called with generated data (valid and invalid), authenticated as the owner, and each
answer must pass: no 5xx (``not_a_server_error``), a body that matches the documented schema of its
status and media type (``response_schema_conformance``), a documented status (``status_code_conformance``)
and, for a 405, an ``Allow`` that names the documented methods. Bounded (``MAX_EXAMPLES`` per operation) so
the suite stays fast; run on the embedded default (SQLite, in-process stores) and on PostgreSQL + Redis.
Admission is off for these servers: with it, most cases would test the rate limiter's 429.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import POSTGRES_URL, REDIS_URL, _admin, _tcp_open, need
from tests.process.conftest import ServerProcess, free_port, server_env

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 8
FAST_ARGON = {
    "identity__argon2_time_cost": "1",
    "identity__argon2_memory_kib": "1024",
    "identity__argon2_parallelism": "1",
}
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, allow_header_conformance]


@dataclass
class Served:
    server: ServerProcess
    schema: Any
    password: str

    def owner_headers(self) -> dict[str, str]:
        """A fresh owner session (a generated POST /auth/logout ends the one it is sent with)."""
        login = httpx.post(
            f"{self.server.base_url}/auth/login",
            json={"email": "owner@localhost", "password": self.password},
            timeout=30,
        )
        assert login.status_code == 200, login.text
        return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _owner_password(server: ServerProcess) -> str:
    """The bootstrap owner's password, printed once on stderr by the worker (soon after it is ready)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"password:\s+(\S+)", server.output())
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise AssertionError(server.output()[-2000:])


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def served(request: pytest.FixtureRequest, start_server: Any, module_tmp: Any) -> Iterator[Served]:
    """A served Bastion on the backend of the parameter, its OpenAPI document loaded, and an owner's token."""
    extra: dict[str, str] = {}
    database = None
    if request.param == "postgres+redis":
        need("PostgreSQL", _tcp_open(POSTGRES_URL, 5432), POSTGRES_URL)
        need("Redis", _tcp_open(REDIS_URL, 6379), REDIS_URL)
        database = f"bastion_props_{uuid.uuid4().hex[:10]}"
        asyncio.run(_admin(POSTGRES_URL, f'CREATE DATABASE "{database}"'))
        extra = {
            "database_url": f"{POSTGRES_URL.rsplit('/', 1)[0]}/{database}",
            "auto_migrate": "true",
            "redis_url": REDIS_URL,
            "redis_prefix": f"props{uuid.uuid4().hex[:8]}:",
        }
    port = free_port()
    env = server_env(
        module_tmp / f"data-props-{request.param}",
        admission__enabled="false",
        rate_limits__auth="100000/minute",
        **FAST_ARGON,
        **extra,
    )
    server: ServerProcess = start_server(
        [sys.executable, "-m", "bastion", "serve", "--port", str(port)],  # Bastion itself, not the test routes
        env=env,
        port=port,
        name=f"props-{request.param.replace('+', '-')}",
    )
    try:
        server.wait_ready()
        schema = schemathesis.openapi.from_url(f"{server.base_url}/schema/openapi.json")
        yield Served(server, schema, _owner_password(server))
    finally:
        server.kill_group()
        if database is not None:
            asyncio.run(_admin(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def test_every_operation_keeps_its_contract(served: Served) -> None:
    """For generated requests to every operation, each as the owner with a fresh session: no 5xx, a documented
    status, a body that matches its documented schema, a 405's Allow. (Each operation in turn, under its own
    Hypothesis run, failures collected: schemathesis's pytest plugin does not run on this pytest.)"""
    operations = [result.ok() for result in served.schema.get_all_operations()]
    assert len(operations) >= 25  # every module's operations are in the document
    failures: list[str] = []
    for operation in operations:
        headers = served.owner_headers()

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: Any) -> None:
            case.call_and_validate(base_url=served.server.base_url, headers=headers, checks=CHECKS)

        began = time.monotonic()
        try:
            check()
        except (Exception, ExceptionGroup) as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
        print(f"{operation.method.upper()} {operation.path}: {time.monotonic() - began:.1f}s")
    assert not failures, "\n\n".join(failures)
