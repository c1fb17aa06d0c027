"""Billing benchmark: Stripe webhook events per second on PostgreSQL, idempotency on, and what a duplicate costs.

    uv run python bench/billing.py [--rounds 5] [--events 2000] [--concurrency 16] [--accounts 64]

The whole app (edge, identity, billing) is called in-process over ASGI, with no server or sockets (as
``bench/identity.py --inproc``): on a shared 2-core machine a wrk-driven server measures the neighbours as much
as the app, and wrk cannot sign each event (HMAC-SHA256 with a fresh id per event). Each round delivers, with
``--concurrency`` in flight, three kinds of ``POST /webhooks/stripe`` (interleaved, so drift hits all alike):

* ``new``: fresh ``customer.subscription.updated`` events (a new id each, a newer ``created``) spread over
  ``--accounts`` subscribed accounts: signature checked, event id claimed, subscription row and account
  locked, state compared and written, plan settled, one commit;
* ``duplicate``: the same events delivered again: signature checked, the id found, nothing written;
* ``bad signature``: the events signed with another secret: the 400 path, no database at all.

Events come from a fresh PostgreSQL database (``BASTION_TEST_POSTGRES_URL``, default the local server);
signatures are made by the stripe SDK's own signer. Reported: events per second (wall), and the benchmark
process's CPU time per event (app plus the tiny driver; PostgreSQL's own CPU is not in it), medians of the
rounds. Results go to bench/results/billing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, bastion_env

RESULTS = ROOT / "bench" / "results"
SECRET = "whsec_bench_secret"
PRICE = "price_bench_pro"


def _event(kind: str, sub: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created,
        "type": kind,
        "data": {"object": sub},
        "livemode": False,
    }


def _subscription(n: int, cancel: bool) -> dict[str, Any]:
    return {
        "id": f"sub_bench{n:05d}",
        "object": "subscription",
        "customer": f"cus_bench{n:05d}",
        "status": "active",
        "cancel_at_period_end": cancel,
        "metadata": {"bastion_user_id": f"bench-user-{n:05d}"},
        "items": {"data": [{"id": f"si_bench{n:05d}", "price": {"id": PRICE}, "current_period_end": 2_000_000_000}]},
    }


def _signed(event: dict[str, Any], secret: str = SECRET) -> tuple[bytes, bytes]:
    import stripe

    body = json.dumps(event, separators=(",", ":"))
    return body.encode(), stripe.WebhookSignature.generate_signature_header(body, secret).encode()


async def _deliver(app: Any, body: bytes, signature: bytes, expect: int) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/stripe",
        "raw_path": b"/webhooks/stripe",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"stripe-signature", signature),
            (b"user-agent", b"Stripe/1.0 (+https://stripe.com/docs/webhooks)"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != expect:
            raise RuntimeError(f"status {message['status']}, expected {expect}")

    await app(scope, receive, send)


async def _phase(app: Any, batch: list[tuple[bytes, bytes]], expect: int, concurrency: int) -> tuple[float, float]:
    """(events per second, CPU microseconds per event) for delivering ``batch`` with ``concurrency`` in flight."""
    queue = iter(batch)

    async def worker() -> None:
        for body, signature in queue:
            await _deliver(app, body, signature, expect)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(batch) / wall, cpu / len(batch) * 1e6


async def _bench(args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    from asgi_lifespan import LifespanManager

    from bastion.app import create_app
    from bastion.settings import Settings

    app = create_app(Settings())
    created = int(time.time()) - 100_000
    runs: dict[str, list[tuple[float, float]]] = {"new": [], "duplicate": [], "bad signature": []}
    async with LifespanManager(app, startup_timeout=120):
        # the accounts: each subscription's first event links its customer and grants pro
        first = [
            _signed(_event("customer.subscription.created", _subscription(n, False), created))
            for n in range(args.accounts)
        ]
        await _phase(app, first, 200, args.concurrency)
        for round_ in range(args.rounds + 1):  # round 0 warms up
            batch = []
            for i in range(args.events):
                created += 1
                sub = _subscription(i % args.accounts, cancel=bool((i // args.accounts + round_) % 2))
                batch.append(_event("customer.subscription.updated", sub, created))
            fresh = [_signed(e) for e in batch]
            forged = [_signed(e, "whsec_someone_else") for e in batch]
            results = {
                "new": await _phase(app, fresh, 200, args.concurrency),
                "duplicate": await _phase(app, fresh, 200, args.concurrency),
                "bad signature": await _phase(app, forged, 400, args.concurrency),
            }
            if round_:
                for name, result in results.items():
                    runs[name].append(result)
            print(f"round {round_}: " + ", ".join(f"{k} {v[0]:.0f}/s" for k, v in results.items()), file=sys.stderr)
    return runs


async def _database(server: str, name: str, drop: bool = False) -> None:
    import asyncpg

    conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if drop else f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--accounts", type=int, default=64)
    args = parser.parse_args()

    server = os.environ.get("BASTION_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    name = f"bastion_bench_billing_{os.getpid()}"
    asyncio.run(_database(server, name))
    data_dir = tempfile.mkdtemp(prefix="bastion-billing-bench-")
    env = bastion_env(data_dir, redis=False)
    env.update(
        {
            "BASTION_DATABASE_URL": server.rsplit("/", 1)[0] + "/" + name,
            "BASTION_AUTO_MIGRATE": "true",
            "BASTION_LOG_LEVEL": "error",  # the access log would measure the terminal, not the app
            "BASTION_IDENTITY__BOOTSTRAP_OWNER": "false",
            "BASTION_BILLING__WEBHOOK_SECRET": SECRET,
            "BASTION_BILLING__SECRET_KEY": "sk_test_bench",
            "BASTION_BILLING__OFFERS": json.dumps({"pro": {"price": PRICE}}),
            "BASTION_BILLING__PUBLIC_URL": "https://bench.example.com",
            "BASTION_RATE_LIMITS__BILLING_WEBHOOK": "1000000000/hour",
        }
    )
    os.environ.update(env)
    try:
        runs = asyncio.run(_bench(args))
    finally:
        asyncio.run(_database(server, name, drop=True))
        shutil.rmtree(data_dir, ignore_errors=True)
    summary = {
        name: {
            "events_per_second": round(statistics.median(r[0] for r in rows)),
            "cpu_us_per_event": round(statistics.median(r[1] for r in rows), 1),
            "runs": [[round(a), round(b, 1)] for a, b in rows],
        }
        for name, rows in runs.items()
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "billing.json").write_text(json.dumps({"args": vars(args), "runs": summary}, indent=2))
    new = summary["new"]
    print(f"| POST /webhooks/stripe on PostgreSQL, {args.concurrency} in flight | events/s | CPU us/event | x new |")
    print("|---|---|---|---|")
    for name, row in summary.items():
        ratio = row["cpu_us_per_event"] / new["cpu_us_per_event"]
        print(f"| {name} | {row['events_per_second']} | {row['cpu_us_per_event']} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
