"""Side-by-side HTTP benchmark: Bastion's full edge against bare frameworks and the peer stacks.

    uv run --group bench python bench/run.py [--duration 8] [--rounds 3] [--only NAME ...] [--server granian]
                                             [--loop asyncio|uvloop] [--baseline DIR]

Every app runs under the same server with one worker, on its own port, and is loaded by wrk
(``-t1 -c64``) in interleaved rounds (A, B, C, A, B, C, ...) so that drift in the machine affects all
of them alike; the median of the rounds is reported, with ratios against bare Litestar. Every app runs on
the same event loop (``--loop``, asyncio by default, as the peers' figures in DESIGN.md were taken).
Beside requests per second it reports the server's own CPU time per request (utime + stime of the server's
process group over the requests wrk completed), which stays steady where requests per second swing with
whatever else the two cores run. ``--baseline DIR`` adds ``bastion@base``: the same app from another
checkout of Bastion (e.g. ``git worktree add ../base <commit>``), to measure a change before and after in
one run.
``bastion+otel-1%`` and ``bastion+otel-100%`` are the same app with tracing on (``BASTION_OTEL__ENDPOINT``) at
those sample ratios, exporting by OTLP/HTTP to a sink in this process that reads and discards each batch (its
CPU is not the server's; the exporter's thread in the server is).
``litestar-bare+headers`` is bare Litestar sending Bastion's response headers and doing nothing else: the
most Bastion could reach while sending them. Results go to ``bench/results/http-<server>[-uvloop].json``
and are printed as a Markdown table for docs/benchmarks.md.

Bastion runs in production mode with JSON access logs on (written to /dev/null) and rate limiting
on, with the ``general`` tier raised so the load is never refused: the decision is still made (and,
with ``--redis``, still a Redis round trip) for every request, as the peers' limiters are.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS_DIR = ROOT / "bench" / "apps"
PEERS = Path(os.environ.get("BASTION_PEERS_DIR", ROOT.parent / "shared" / "peers"))
RESULTS = ROOT / "bench" / "results"


@dataclass
class App:
    name: str
    target: str
    directory: Path
    path: str = "/hello"
    method: str = "GET"
    env: dict[str, str] = field(default_factory=dict)
    src: Path = ROOT / "src"


def bastion_env(data_dir: str, redis: bool) -> dict[str, str]:
    env = {
        "BASTION_ENV": "production",
        "BASTION_CRYPTO__KEYS": json.dumps({"bench": base64.b64encode(os.urandom(32)).decode()}),
        "BASTION_CRYPTO__ACTIVE_KEY_ID": "bench",
        "BASTION_CRON_SECRET": secrets.token_urlsafe(32),
        "BASTION_ALLOWED_HOSTS": "127.0.0.1,localhost,bench.example.com",
        "BASTION_SECURITY_CONTACT": "mailto:security@example.com",
        "BASTION_RATE_LIMITS__GENERAL": "1000000000/second",
        "BASTION_DATA_DIR": data_dir,
    }
    if redis:
        env["BASTION_REDIS_URL"] = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        env["BASTION_REDIS_PREFIX"] = f"bench{os.getpid()}:"
    return env


def otel_env(data_dir: str, ratio: float, sink_port: int) -> dict[str, str]:
    return {
        **bastion_env(data_dir, redis=False),
        "BASTION_OTEL__ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "BASTION_OTEL__SAMPLE_RATIO": str(ratio),
    }


class OtlpSink:
    """An OTLP/HTTP endpoint that reads each export and answers 200 (an empty ExportTraceServiceResponse)."""

    def __init__(self, port: int) -> None:
        import http.server
        import threading

        sink = self
        self.batches = 0
        self.bytes = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("content-length", "0"))
                self.rfile.read(size)
                sink.batches += 1
                sink.bytes += size
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def apps(data_dir: str, sink_port: int) -> list[App]:
    return [
        App("bastion", "bastion_hello:app", APPS_DIR, env=bastion_env(data_dir + "/mem", redis=False)),
        App("bastion+otel-1%", "bastion_hello:app", APPS_DIR, env=otel_env(data_dir + "/o1", 0.01, sink_port)),
        App("bastion+otel-100%", "bastion_hello:app", APPS_DIR, env=otel_env(data_dir + "/o100", 1.0, sink_port)),
        App("bastion-redis", "bastion_hello:app", APPS_DIR, env=bastion_env(data_dir + "/redis", redis=True)),
        App("litestar-bare", "litestar_bare:app", PEERS),
        # bare Litestar sending Bastion's 21 response headers, doing none of the work: the ceiling
        App("litestar-bare+headers", "litestar_headers:app", APPS_DIR),
        App("starlette-bare", "starlette_bare:app", PEERS),
        App("fastapi-stack", "fastapi_stack:app", PEERS),
        App("litestar-stack", "litestar_stack:app", PEERS),
    ]


def start(app: App, port: int, server: str, loop: str = "asyncio") -> subprocess.Popen[bytes]:
    python = sys.executable
    if server == "granian":
        cmd = [
            python,
            "-m",
            "granian",
            "--interface",
            "asgi",
            app.target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
            "--http",
            "1",
            "--loop",
            loop,
        ]
    else:
        cmd = [
            python,
            "-m",
            "uvicorn",
            app.target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
            "--no-server-header",
            "--loop",
            loop,
        ]
    env = dict(os.environ, **app.env, PYTHONPATH=f"{app.directory}:{PEERS}:{app.src}")
    return subprocess.Popen(
        cmd, cwd=app.directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def wait_ready(port: int, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"app on port {port} did not become ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in the process group ``pgid`` (the server and its workers)."""
    ticks = 0
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            fields = (child / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # fields after the command: state ppid pgrp ... utime(11) stime(12)
                ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(port: int, path: str, duration: float, connections: int = 64, pgid: int | None = None) -> dict[str, float]:
    before = cpu_seconds(pgid) if pgid else 0.0
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency", f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = cpu_seconds(pgid) - before if pgid else 0.0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    served = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = 0.0
    if p99:
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        p99_ms = float(p99.group(1)) * scale
    cpu_us = cpu / served * 1e6 if served and pgid else 0.0
    return {"rps": rps, "non2xx": float(non2xx.group(1)) if non2xx else 0.0, "p99_ms": p99_ms, "cpu_us": cpu_us}


def rss_mb(pid: int) -> float:
    """RSS of the worker process(es) under the server's process group leader."""
    total = 0
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            stat = (child / "stat").read_text().split()
            if int(stat[4]) == pid and int(child.name) != pid:  # same process group, not the leader
                total += int((child / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total / 1_048_576


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--baseline", type=Path, help="another checkout of Bastion, served as bastion@base")
    parser.add_argument("--port-base", type=int, default=8810, help="apps listen from here; the OTLP sink on +9")
    parser.add_argument("--out", default="http", help="results go to bench/results/<out>-<server>[-<loop>].json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (apt-get install wrk)")
    data_dir = tempfile.mkdtemp(prefix="bastion-bench-")
    candidates = apps(data_dir, args.port_base + 9)
    if args.baseline is not None:
        base_tree = args.baseline.resolve()
        env = bastion_env(data_dir + "/base", redis=False)
        candidates.insert(
            1, App("bastion@base", "bastion_hello:app", base_tree / "bench" / "apps", env=env, src=base_tree / "src")
        )
    selected = [a for a in candidates if not args.only or a.name in args.only]
    sink = OtlpSink(args.port_base + 9) if any(a.name.startswith("bastion+otel") for a in selected) else None
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports = {app.name: args.port_base + i for i, app in enumerate(selected)}
    results: dict[str, list[dict[str, float]]] = {app.name: [] for app in selected}
    try:
        for app in selected:
            procs[app.name] = start(app, ports[app.name], args.server, args.loop)
        for app in selected:
            wait_ready(ports[app.name], app.path)
            wrk(ports[app.name], app.path, 2.0)  # warm-up
        for _ in range(args.rounds):
            for app in selected:
                results[app.name].append(wrk(ports[app.name], app.path, args.duration, pgid=procs[app.name].pid))
        memory = {app.name: rss_mb(procs[app.name].pid) for app in selected}
    finally:
        for proc in procs.values():
            stop(proc)
        shutil.rmtree(data_dir, ignore_errors=True)
        if sink is not None:
            print(f"OTLP sink: {sink.batches} export batches, {sink.bytes:,} bytes")
            sink.close()

    summary = {}
    for app in selected:
        runs = results[app.name]
        summary[app.name] = {
            "rps": statistics.median(r["rps"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "cpu_us": statistics.median(r["cpu_us"] for r in runs),
            "non2xx": sum(r["non2xx"] for r in runs),
            "rps_runs": [r["rps"] for r in runs],
            "rss_mb_after": round(memory[app.name], 1),
        }
    base = summary.get("litestar-bare", {}).get("rps")
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.loop == "asyncio" else f"-{args.loop}"
    (RESULTS / f"{args.out}-{args.server}{suffix}.json").write_text(
        json.dumps(
            {
                "server": args.server,
                "loop": args.loop,
                "duration": args.duration,
                "rounds": args.rounds,
                "apps": summary,
            },
            indent=2,
        )
    )
    print(
        f"| app ({args.server}, {args.loop}, 1 worker, wrk -t1 -c64) | req/s (median of {args.rounds}) | "
        "× bare Litestar | server CPU µs/request | p99 ms | non-2xx | worker RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, row in summary.items():
        ratio = f"{row['rps'] / base:.2f}" if base else "-"
        print(
            f"| {name} | {row['rps']:,.0f} | {ratio} | {row['cpu_us']:.0f} | {row['p99_ms']:.2f} | "
            f"{row['non2xx']:.0f} | {row['rss_mb_after']} |"
        )


if __name__ == "__main__":
    main()
