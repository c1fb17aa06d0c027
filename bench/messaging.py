"""Messaging, end to end: messages per second from accepted to received by the (fake) WhatsApp API, and the
accept latency p50/p99, for Bastion on the embedded default (SQLite, in-process dispatcher), Bastion on
PostgreSQL + Redis + RabbitMQ with 1 and 2 ``bastion worker`` processes, and the peer Python teams use for
this job: a FastAPI endpoint enqueueing one Celery task per message on the same RabbitMQ (confirms on, late
acks), each task calling the same fake API (``bench/apps/celery_messaging.py``).

    uv run --group bench python bench/messaging.py --messages 1000 --rounds 1

Each system gets a fresh fake API, database and queues; ``--messages`` messages to distinct recipients are
posted by ``--concurrency`` clients; the run ends when the fake has received them all (checked: nothing lost,
nothing twice) or after ``--timeout``. WhatsApp's own limits (80/s per number) are raised out of the way: this
measures the pipeline. Results go to ``bench/results/messaging.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "bench" / "apps"
AMQP = os.environ.get("BASTION_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES = os.environ.get("BASTION_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PORTS = iter(range(8110, 8120))  # this bench's ports


KEEP = os.environ.get("BENCH_LOGS")
"""A folder to keep the servers' logs in (else a temporary one)."""


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full = dict(os.environ, **env, PYTHONPATH=f"{APPS}:{ROOT}:{ROOT / 'src'}")
    handle = log.open("ab")
    return subprocess.Popen(cmd, cwd=APPS, env=full, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer (logs in {os.environ.get('BENCH_LOGS', 'the temporary folder')})")


def granian(target: str, port: int) -> list[str]:
    return [sys.executable, "-m", "granian", "--interface", "asgi", target, "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--no-ws", "--log-level", "warning", "--http", "1", "--loop", "uvloop"]  # fmt: skip


def bastion_env(data_dir: str, fake_url: str, scaled: dict[str, str] | None) -> dict[str, str]:
    env = {
        "BASTION_ENV": "production",
        "BASTION_CRYPTO__KEYS": json.dumps({"bench": base64.b64encode(os.urandom(32)).decode()}),
        "BASTION_CRYPTO__ACTIVE_KEY_ID": "bench",
        "BASTION_CRON_SECRET": secrets.token_urlsafe(32),
        "BASTION_ALLOWED_HOSTS": "127.0.0.1,localhost,bench.example.com",
        "BASTION_SECURITY_CONTACT": "mailto:security@example.com",
        "BASTION_RATE_LIMITS__GENERAL": "1000000000/second",
        "BASTION_RATE_LIMITS__MESSAGING_SEND": "1000000000/second",
        "BASTION_DATA_DIR": data_dir,
        "BASTION_LOG_LEVEL": "warning",
        "BASTION_MESSAGING__WHATSAPP__BASE_URL": fake_url,
        "BASTION_MESSAGING__WHATSAPP__PHONE_NUMBER_ID": "106540352242922",
        "BASTION_MESSAGING__WHATSAPP__ACCESS_TOKEN": "test-token",
        "BASTION_MESSAGING__WHATSAPP__APP_SECRET": "test-app-secret-0123456789",
        "BASTION_MESSAGING__THROUGHPUT_PER_SECOND": "1000000",
        "BASTION_MESSAGING__PAIR_INTERVAL_SECONDS": "0",
        "BASTION_MESSAGING__POLL_SECONDS": "0.05",
    }
    env.update(scaled or {})
    return env


async def create_database() -> str:
    import asyncpg  # type: ignore[import-untyped]

    name = f"bench_msg_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(POSTGRES.replace("+asyncpg", ""))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return POSTGRES.rsplit("/", 1)[0] + "/" + name


async def drop_database(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES.replace("+asyncpg", ""))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


async def delete_queues(names: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP)
    channel = await connection.channel()
    for name in names:
        await channel.queue_delete(name)
    await connection.close()


async def load(port: int, messages: int, concurrency: int, template: bool) -> tuple[float, list[float]]:
    """Post the messages; (when the first was posted, each accept's latency in ms)."""
    headers = {"Authorization": "Bearer bench-alice"}
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
        if template:
            answer = await http.post("/api/messaging/templates", json={"name": "bench", "param_count": 1})
            assert answer.status_code in (201, 409), answer.text
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(messages):
            queue.put_nowait(n)

        async def client() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                to = f"+1555{n:07d}"
                body: dict[str, Any] = {"to": to, "text": f"n{n}"}
                if template:
                    body = {"to": to, "template": {"name": "bench", "params": [f"n{n}"]}}
                started = time.perf_counter()
                answer = await http.post("/api/messages", json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 202, answer.text

        began = time.time()
        await asyncio.gather(*(client() for _ in range(concurrency)))
    return began, latencies


def stats(fake_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{fake_port}/_stats", timeout=5) as response:
        found: dict[str, Any] = json.loads(response.read())
    return found


async def run_system(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    fake_port, app_port = next(PORTS), next(PORTS)
    fake_url = f"http://127.0.0.1:{fake_port}"
    logs = workdir / name
    logs.mkdir(parents=True, exist_ok=True)
    procs = [spawn([sys.executable, "-m", "tests.messaging.fake_whatsapp", str(fake_port)], {}, logs / "fake.log")]
    database: str | None = None
    queues: list[str] = []
    try:
        wait_http(f"{fake_url}/_stats")
        if name == "celery":
            queue = f"bench.celery.{uuid.uuid4().hex[:8]}"
            queues = [queue]
            env = {"BENCH_CELERY_QUEUE": queue, "BENCH_FAKE_URL": fake_url, "BENCH_AMQP_URL": AMQP}
            procs.append(spawn(granian("celery_messaging:api", app_port), env, logs / "api.log"))
            celery_worker = [sys.executable, "-m", "celery", "-A", "celery_messaging", "worker"]
            celery_worker += ["--concurrency", str(args.celery_concurrency), "--loglevel", "warning", "-Q", queue]
            procs.append(spawn(celery_worker, env, logs / "worker.log"))
            wait_http(f"http://127.0.0.1:{app_port}/docs")
            template = False
        else:
            scaled = None
            workers = 0
            if name != "bastion-embedded":
                database = await create_database()
                prefix = f"bench.{uuid.uuid4().hex[:8]}"
                queues = [f"{prefix}.{name}" for name in ("work", "dead")]
                queues += [f"{prefix}.wait.{ms}" for ms in (1000, 2000, 10000, 60000, 300000)]
                scaled = {
                    "BASTION_DATABASE_URL": database,
                    "BASTION_REDIS_URL": REDIS,
                    "BASTION_REDIS_PREFIX": f"{prefix}:",
                    "BASTION_AMQP_URL": AMQP,
                    "BASTION_MESSAGING__QUEUE_PREFIX": prefix,
                }
                workers = int(name.rsplit("-", 1)[1].removesuffix("w"))
            env = bastion_env(str(logs / "data"), fake_url, scaled)
            if database:
                migrate = [sys.executable, "-m", "bastion", "migrate"]
                await asyncio.to_thread(
                    subprocess.run, migrate, env=dict(os.environ, **env), check=True, capture_output=True
                )
            procs.append(spawn(granian("messaging_app:app", app_port), env, logs / "app.log"))
            for n in range(workers):
                cmd = [sys.executable, "-m", "bastion", "worker", "--concurrency", str(args.worker_concurrency)]
                procs.append(spawn(cmd, env, logs / f"worker{n}.log"))
            wait_http(f"http://127.0.0.1:{app_port}/health/live")
            template = True
        await asyncio.sleep(1.0)  # workers attach their consumers
        began, latencies = await load(app_port, args.messages, args.concurrency, template)
        deadline = time.monotonic() + args.timeout
        found = stats(fake_port)
        while found["received"] < args.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            found = stats(fake_port)
        await asyncio.sleep(0.5)
        found = stats(fake_port)  # anything sent twice shows up after the last one
    finally:
        for proc in reversed(procs):
            stop(proc)
        if database:
            await drop_database(database)
        if queues:
            await delete_queues(queues)
    seconds = (found["last"] or began) - began
    latencies.sort()
    return {
        "system": name,
        "messages": args.messages,
        "received": found["received"],
        "distinct": found["distinct"],
        "end_to_end_per_second": round(args.messages / seconds, 1) if found["received"] >= args.messages else None,
        "seconds": round(seconds, 2),
        "accept_p50_ms": round(statistics.median(latencies), 2),
        "accept_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--worker-concurrency", type=int, default=64)
    parser.add_argument("--celery-concurrency", type=int, default=8)
    parser.add_argument(
        "--systems", default="bastion-embedded,bastion-rabbitmq-1w,bastion-rabbitmq-2w,celery", help="comma-separated"
    )
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-messaging-", ignore_cleanup_errors=True) as tmp:
        for round_no in range(args.rounds):
            for name in args.systems.split(","):
                global PORTS
                PORTS = iter(range(8110, 8120))
                result = await run_system(name, args, Path(KEEP or tmp) / f"r{round_no}")
                result["round"] = round_no
                results.append(result)
                print(json.dumps(result), flush=True)
    print()
    print(f"| system | e2e msg/s | accept p50 ms | accept p99 ms | received / distinct of {args.messages} |")
    print("|---|---|---|---|---|")
    for name in args.systems.split(","):
        mine = [r for r in results if r["system"] == name]
        rates = [r["end_to_end_per_second"] or 0 for r in mine]
        print(
            f"| {name} | {statistics.median(rates):.0f} | {statistics.median(r['accept_p50_ms'] for r in mine):.1f} | "
            f"{statistics.median(r['accept_p99_ms'] for r in mine):.1f} | "
            f"{min(r['received'] for r in mine)} / {min(r['distinct'] for r in mine)} |"
        )
    out = ROOT / "bench" / "results" / "messaging.json"
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
