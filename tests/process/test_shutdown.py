"""Graceful shutdown of a real server process on SIGTERM, under granian and under uvicorn.

The spec: on SIGTERM readiness turns 503 at once, the listener stops, in-flight requests finish, open
streams receive a final event and close before the grace period ends, pools close, the process exits 0.

The scenario runs once per server (a module-scoped fixture); each test checks one part of it.
Readiness itself cannot be read over HTTP once the signal has arrived: both servers close idle
keep-alive connections at once and busy ones after their response, and refuse new connections, so
the process-level evidence that readiness flipped at the signal is the worker's ``draining`` line,
written while the requests are still in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.process.conftest import free_port, serve_command, server_env

pytestmark = pytest.mark.slow

GRACE_SECONDS = 8.0
SLOW_SECONDS = 1.5
SLOW_REQUESTS = 3
FINAL_EVENTS = ["event: error", 'data: {"error":"server shutting down"}', "data: [DONE]"]


@dataclass
class Shutdown:
    """What the client side saw around one SIGTERM; times are seconds after the signal."""

    slow: list[tuple[int | None, float, str]] = field(default_factory=list)
    stream_lines: list[str] = field(default_factory=list)
    stream_error: str | None = None
    stream_closed_after: float | None = None
    exit_code: int | None = None
    exit_after: float | None = None
    refused_after_exit: bool | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""


async def _in_flight(client: httpx.AsyncClient) -> int:
    body = (await client.get("/health/detailed")).json()
    return int(body["checks"]["http:inFlight"][0]["observedValue"])


async def _run(base_url: str, pid: int, wait_exit: Any, port: int) -> Shutdown:
    seen = Shutdown()
    first_tick = asyncio.Event()
    signalled_at = 0.0

    async def slow(client: httpx.AsyncClient) -> None:
        try:
            response = await client.get("/t/slow", params={"seconds": SLOW_SECONDS})
            seen.slow.append((response.status_code, time.monotonic() - signalled_at, response.text))
        except httpx.HTTPError as exc:
            seen.slow.append((None, time.monotonic() - signalled_at, repr(exc)))

    async def stream(client: httpx.AsyncClient) -> None:
        try:
            async with client.stream("GET", "/t/stream", params={"interval": 0.1}) as response:
                async for line in response.aiter_lines():
                    seen.stream_lines.append(line)
                    if line.startswith('data: {"tick"'):
                        first_tick.set()
        except httpx.HTTPError as exc:
            seen.stream_error = repr(exc)
        finally:
            seen.stream_closed_after = time.monotonic() - signalled_at
            first_tick.set()

    timeout = httpx.Timeout(GRACE_SECONDS + 20)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as probe,
    ):
        tasks = [asyncio.create_task(stream(client))]
        await asyncio.wait_for(first_tick.wait(), timeout=20)
        tasks += [asyncio.create_task(slow(client)) for _ in range(SLOW_REQUESTS)]
        # The stream, the slow requests and the probe itself are in the worker before the signal.
        deadline = time.monotonic() + 10
        while await _in_flight(probe) < SLOW_REQUESTS + 2:
            assert time.monotonic() < deadline, "the slow requests never reached the worker"
            await asyncio.sleep(0.02)
        signalled_at = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=GRACE_SECONDS + 20)
    seen.exit_code = await asyncio.to_thread(wait_exit, GRACE_SECONDS + 20)
    seen.exit_after = time.monotonic() - signalled_at
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        seen.refused_after_exit = False
    except ConnectionRefusedError:
        seen.refused_after_exit = True
    return seen


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def shutdown(request: pytest.FixtureRequest, start_server: Any, module_tmp: Any) -> Shutdown:
    """Serve, open a stream and slow requests, SIGTERM the main process, record what happened."""
    name = request.param
    port = free_port()
    env = server_env(module_tmp / f"data-{name}", shutdown_grace_seconds=str(GRACE_SECONDS))
    server = start_server(
        serve_command("--server", name, "--port", str(port)), env=env, port=port, name=f"shutdown-{name}"
    )
    server.wait_ready()
    seen = asyncio.run(_run(server.base_url, server.pid, server.wait_exit, port))
    seen.logs = server.json_lines()
    seen.output = server.output()
    print(
        f"\n{name}: stream closed {seen.stream_closed_after:.2f}s, slow requests done "
        f"{[round(s[1], 2) for s in seen.slow]}s, exit {seen.exit_code} {seen.exit_after:.2f}s after SIGTERM"
    )
    return seen


def test_in_flight_requests_finish_with_200(shutdown: Shutdown) -> None:
    """Requests in flight at SIGTERM complete with 200 after the signal."""
    assert len(shutdown.slow) == SLOW_REQUESTS
    assert [status for status, _, _ in shutdown.slow] == [200] * SLOW_REQUESTS, shutdown.slow
    assert all(after > 0 for _, after, _ in shutdown.slow)


def test_drain_begins_at_the_signal_while_requests_are_in_flight(shutdown: Shutdown) -> None:
    """The worker turns unready (draining) at the signal, with the requests still in flight."""
    draining = [line for line in shutdown.logs if line.get("event") == "draining"]
    assert draining, shutdown.output[-3000:]
    assert draining[0]["in_flight"] >= SLOW_REQUESTS + 1


def test_open_stream_ends_with_an_error_event_and_done(shutdown: Shutdown) -> None:
    """An open SSE stream receives the final error event and [DONE], then closes cleanly."""
    assert shutdown.stream_error is None
    events = [line for line in shutdown.stream_lines if line]
    assert events[-3:] == FINAL_EVENTS


def test_stream_closes_well_within_the_grace_period(shutdown: Shutdown) -> None:
    """The open stream ends within half the grace period, not when the server gives up on it."""
    assert shutdown.stream_closed_after is not None
    assert shutdown.stream_closed_after < GRACE_SECONDS / 2


def test_process_exits_0(shutdown: Shutdown) -> None:
    """The server process exits with status 0 after SIGTERM."""
    assert shutdown.exit_code == 0, shutdown.output[-3000:]


def test_process_exits_within_the_grace_period(shutdown: Shutdown) -> None:
    """The whole shutdown, in-flight requests included, ends before the grace period does."""
    assert shutdown.exit_after is not None
    assert shutdown.exit_after < GRACE_SECONDS


def test_new_connections_are_refused_after_shutdown(shutdown: Shutdown) -> None:
    """Once the process has exited, connecting to its port is refused."""
    assert shutdown.refused_after_exit is True


def test_worker_closes_its_resources_and_logs_stopped(shutdown: Shutdown) -> None:
    """The worker runs its closers (pools, clients) without error and logs that it stopped."""
    events = [line.get("event") for line in shutdown.logs]
    assert "stopped" in events, shutdown.output[-3000:]
    assert "closing failed" not in events
