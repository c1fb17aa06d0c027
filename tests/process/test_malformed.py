"""Malformed bodies and slow clients against a real server (granian and uvicorn), over raw sockets.

Each answer must be a 4xx problem (never a 500), and no client may hold a request (or the drain) forever.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any

import pytest

from tests.process.conftest import ServerProcess, free_port, serve_command, server_env

pytestmark = pytest.mark.slow

IDLE = 1.0  # BASTION_BODY_IDLE_TIMEOUT_SECONDS for these servers
TOTAL = 3.0  # BASTION_BODY_TIMEOUT_SECONDS
GRACE = 6.0  # BASTION_SHUTDOWN_GRACE_SECONDS


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def server(request: pytest.FixtureRequest, start_server: Any, module_tmp: Any) -> ServerProcess:
    name = request.param
    port = free_port()
    env = server_env(
        module_tmp / f"data-malformed-{name}",
        body_idle_timeout_seconds=str(IDLE),
        body_timeout_seconds=str(TOTAL),
        shutdown_grace_seconds=str(GRACE),
    )
    proc: ServerProcess = start_server(
        serve_command("--server", name, "--port", str(port)), env=env, port=port, name=f"malformed-{name}"
    )
    proc.wait_ready()
    return proc


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    sock.settimeout(15)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """The status and the raw response, read until the server closes or a full response has arrived."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep and b"content-length:" in head.lower():
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(body) >= length:
                break
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data[9:12]), data


def _post(server: ServerProcess, body: bytes, path: str = "/t/echo") -> tuple[int, bytes]:
    with _connect(server) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        return _read_response(sock)


def test_invalid_utf8_inside_a_json_string_is_a_400(server: ServerProcess) -> None:
    """A byte that is not UTF-8 inside a JSON string is refused with 400 MALFORMED_BODY."""
    status, raw = _post(server, b'{"name": "caf\xe9"}')
    assert status == 400, raw
    assert b"MALFORMED_BODY" in raw and b"application/problem+json" in raw


def test_nesting_ten_thousand_deep_is_a_400(server: ServerProcess) -> None:
    """JSON nested 10,000 deep (past the 64-level policy and Python's recursion limit) is a 400."""
    status, raw = _post(server, b"[" * 10_000 + b"]" * 10_000)
    assert status == 400, raw
    assert b"MALFORMED_BODY" in raw


def test_invalid_chunk_size_is_a_400(server: ServerProcess) -> None:
    """A chunked body with a chunk size that is not hexadecimal gets a 400 (from the server or the app)."""
    with _connect(server) as sock:
        sock.sendall(
            b"POST /t/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
        )
        status, raw = _read_response(sock)
    assert 400 <= status < 500, raw


def test_a_body_that_stops_arriving_gets_a_408(server: ServerProcess) -> None:
    """Headers, then half the body and silence: 408 REQUEST_TIMEOUT after the idle timeout, connection closed."""
    with _connect(server) as sock:
        sock.sendall(
            b"POST /t/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b'Content-Length: 40\r\n\r\n{"name": '
        )
        began = time.monotonic()
        status, raw = _read_response(sock)
        took = time.monotonic() - began
    assert status == 408, raw
    assert b"REQUEST_TIMEOUT" in raw
    assert IDLE * 0.8 < took < IDLE + 3, took


def test_a_trickling_body_is_cut_at_the_total_timeout(server: ServerProcess) -> None:
    """A byte every half second never trips the idle timeout, but the whole body has TOTAL seconds: then 408."""
    with _connect(server) as sock:
        sock.sendall(
            b"POST /t/text HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
        )
        began = time.monotonic()
        sock.settimeout(0.5)
        data = b""
        while time.monotonic() - began < TOTAL + 5:
            try:
                sock.sendall(b"x")
                data += sock.recv(65536)
                if data:
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        took = time.monotonic() - began
    assert data.startswith(b"HTTP/1.1 408"), data[:300]
    assert TOTAL * 0.8 < took < TOTAL + 3, took


def test_sigterm_with_a_trickling_client_drains_cleanly(start_server: Any, module_tmp: Any) -> None:
    """SIGTERM while a client trickles its body: the request is cut, the process exits 0 within the grace
    period, and no worker is killed."""
    for name in ("granian", "uvicorn"):
        port = free_port()
        env = server_env(
            module_tmp / f"data-trickle-{name}",
            body_idle_timeout_seconds="30",
            body_timeout_seconds="300",
            shutdown_grace_seconds=str(GRACE),
        )
        proc: ServerProcess = start_server(
            serve_command("--server", name, "--port", str(port)), env=env, port=port, name=f"trickle-{name}"
        )
        proc.wait_ready()
        with _connect(proc) as sock:
            sock.sendall(
                b"POST /t/text HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 100000\r\n\r\n"
            )
            for _ in range(4):
                sock.sendall(b"x")
                time.sleep(0.25)
            signalled = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            sock.settimeout(0.3)
            answer = b""
            while proc.proc.poll() is None and time.monotonic() - signalled < GRACE + 10:
                try:
                    sock.sendall(b"x")
                    answer += sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
        code = proc.wait_exit(timeout=GRACE + 10)
        took = time.monotonic() - signalled
        output = proc.output()
        assert code == 0, output[-3000:]
        assert took < GRACE, (name, took)
        assert "kill" not in output.lower(), output[-3000:]
        if answer:
            assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
