"""Visitors at the gate: check-ins per second at one site from a guard's device, and their latency p50/p99, on
PostgreSQL (embedded dispatcher), with the messages they cause flowing to the (fake) WhatsApp API.

    uv run --group bench python bench/visitors.py --checkins 2000 --concurrency 50
    uv run --group bench python bench/visitors.py --workers 1     # messages on RabbitMQ, sent by a worker

Setup (not measured): a site, a host with a phone, a guard, the templates, and ``--checkins`` invitations
(each one sends its pass). Then ``--concurrency`` clients check the visitors in, each with its pass code; every
check-in queues "your visitor has arrived" for the host in its transaction. The run checks that every
check-in answered 200 and that the fake received every pass and every arrival once. Target: p99 ≤ 20 ms at
50 concurrent clients. Results go to ``bench/results/visitors.json``. Ports 8180-8181.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from messaging import (
    AMQP,
    REDIS,
    bastion_env,
    create_database,
    delete_queues,
    drop_database,
    granian,
    spawn,
    stop,
    wait_http,
)

ROOT = Path(__file__).resolve().parents[1]
FAKE_PORT, APP_PORT = 8180, 8181
ROOT_H = {"Authorization": "Bearer bench-root"}
HOST_H = {"Authorization": "Bearer bench-hana"}
GUARD_H = {"Authorization": "Bearer bench-gus"}


async def setup(http: httpx.AsyncClient, visits: int) -> tuple[str, list[tuple[str, str]]]:
    site = (await http.post("/api/sites", json={"name": "HQ", "timezone": "Europe/Paris"}, headers=ROOT_H)).json()
    for member in (
        {"account_id": "hana", "role": "host", "phone": "+15550001111"},
        {"account_id": "gus", "role": "guard"},
    ):
        assert (await http.post(f"/api/sites/{site['id']}/members", json=member, headers=ROOT_H)).status_code == 201
    for name, count in {"visitor_pass": 4, "visitor_arrived": 2}.items():
        await http.post("/api/messaging/templates", json={"name": name, "param_count": count}, headers=ROOT_H)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    window = {"starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(hours=4)).isoformat()}
    consent = {"at": "2026-12-01T10:00:00Z", "method": "bench"}
    passes: list[tuple[str, str]] = []
    semaphore = asyncio.Semaphore(16)

    async def one(n: int) -> None:
        async with semaphore:
            body = {"site_id": site["id"], "name": f"V{n}", "phone": f"+1556{n:07d}", "consent": consent}
            visitor = (await http.post("/api/visitors", json=body, headers=HOST_H)).json()
            visit = (
                await http.post("/api/visits", json={"visitor_id": visitor["id"], **window}, headers=HOST_H)
            ).json()
            passes.append((visit["id"], visit["pass_code"]))

    await asyncio.gather(*(one(n) for n in range(visits)))
    return site["id"], passes


async def gate(
    http: httpx.AsyncClient, site_id: str, passes: list[tuple[str, str]], concurrency: int
) -> tuple[float, list[float]]:
    queue = list(passes)
    latencies: list[float] = []

    async def device() -> None:
        while queue:
            visit_id, code = queue.pop()
            started = time.perf_counter()
            answer = await http.post(
                f"/api/visits/{visit_id}/check-in", json={"code": code, "site_id": site_id}, headers=GUARD_H
            )
            latencies.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.text

    began = time.perf_counter()
    await asyncio.gather(*(device() for _ in range(concurrency)))
    return time.perf_counter() - began, latencies


def fake_stats() -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{FAKE_PORT}/_stats", timeout=5) as response:
        found: dict[str, Any] = json.loads(response.read())
    return found


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    procs = [spawn([sys.executable, "-m", "tests.messaging.fake_whatsapp", str(FAKE_PORT)], {}, workdir / "fake.log")]
    try:
        database = await create_database()
    except BaseException:
        stop(procs[0])
        raise
    scaled = {"BASTION_DATABASE_URL": database}
    queues: list[str] = []
    if args.workers:
        prefix = f"bench.visitors.{uuid.uuid4().hex[:8]}"
        queues = [f"{prefix}.{name}" for name in ("work", "dead")]
        queues += [f"{prefix}.wait.{ms}" for ms in (1000, 2000, 10000, 60000, 300000)]
        scaled |= {
            "BASTION_REDIS_URL": REDIS,
            "BASTION_REDIS_PREFIX": f"{prefix}:",
            "BASTION_AMQP_URL": AMQP,
            "BASTION_MESSAGING__QUEUE_PREFIX": prefix,
        }
    try:
        wait_http(f"http://127.0.0.1:{FAKE_PORT}/_stats")
        if fake_stats()["received"] or procs[0].poll() is not None:
            raise RuntimeError(f"port {FAKE_PORT} is held by another fake API (a run that did not stop?)")
        env = bastion_env(str(workdir / "data"), f"http://127.0.0.1:{FAKE_PORT}", scaled)
        env["BASTION_RATE_LIMITS__VISITORS_GATE"] = "1000000000/second"
        migrate = [sys.executable, "-m", "bastion", "migrate"]
        await asyncio.to_thread(subprocess.run, migrate, env=dict(os.environ, **env), check=True, capture_output=True)
        procs.append(spawn(granian("visitors_app:app", APP_PORT), env, workdir / "app.log"))
        for n in range(args.workers):
            worker = [sys.executable, "-m", "bastion", "worker", "--concurrency", "64"]
            procs.append(spawn(worker, env, workdir / f"worker{n}.log"))
        wait_http(f"http://127.0.0.1:{APP_PORT}/health/live")
        limits = httpx.Limits(max_connections=args.concurrency + 16)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{APP_PORT}", timeout=30, limits=limits) as http:
            site_id, passes = await setup(http, args.checkins)
            passes_sent_at = time.monotonic()
            while fake_stats()["received"] < args.checkins and time.monotonic() - passes_sent_at < args.timeout:
                await asyncio.sleep(0.2)
            seconds, latencies = await gate(http, site_id, passes, args.concurrency)
        expected = 2 * args.checkins
        deadline = time.monotonic() + args.timeout
        while fake_stats()["received"] < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        found = fake_stats()
    finally:
        for proc in reversed(procs):
            stop(proc)
        await drop_database(database)
        if queues:
            await delete_queues(queues)
    latencies.sort()
    return {
        "workers": args.workers,
        "checkins": args.checkins,
        "concurrency": args.concurrency,
        "checkins_per_second": round(args.checkins / seconds, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "messages_expected": expected,
        "messages_received": found["received"],
        "messages_distinct": found["distinct"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkins", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--workers", type=int, default=0, help="bastion worker processes (0: embedded dispatcher)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-visitors-", ignore_cleanup_errors=True) as tmp:
        for round_no in range(args.rounds):
            workdir = Path(os.environ.get("BENCH_LOGS") or tmp) / f"r{round_no}"
            workdir.mkdir(parents=True, exist_ok=True)
            result = {"round": round_no, **await run(args, workdir)}
            results.append(result)
            print(json.dumps(result), flush=True)
    out = ROOT / "bench" / "results" / "visitors.json"
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
