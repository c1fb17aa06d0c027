"""Secrets benchmark: create and reveal throughput on SQLite, PostgreSQL and Redis, side by side, and the
200-concurrent-reveal race, in one run.

    uv run python bench/secrets_bench.py [--rounds 3] [--duration 6] [--think 1000] [--workers 1] [--server granian]
                                  [--only sqlite postgres redis]

Three Bastion servers run at once (one worker each, production mode, JSON access log to /dev/null), one
per backend: SQLite (the embedded default, in-process limiter), PostgreSQL (in-process limiter) and Redis
(secrets and limiter in Redis). The rate-limit tiers and the secrets caps are raised so the load is never
refused; every request still takes the limiter's decision. Each round loads every server in turn
(interleaved: sqlite, postgres, redis, sqlite, ...) and the medians of the rounds are reported:

* create: ``wrk -t1 -c64`` POSTs of a 40-byte secret (server-side encryption, no passphrase);
* reveal, saturated: ``wrk -t1 -c200`` reveals, round-robin over secrets with 100 views each;
* reveal, 200 clients at a steady rate: the same 200 connections, each pausing a random 0 to 2 x
  ``--think`` ms between requests (wrk's ``delay()``), so that the latency is service time rather than
  the queue of a saturated server;
* race: one 1-view secret, 200 reveals sent at once over 200 open connections; the wall time until
  all 200 answered, and how many got the secret (must be 1).

Before each of these the bench waits for the server to be idle again (``settle``): when wrk stops, the
requests it had in flight are still queued in the server (about 200 x the service time, half a second
after a saturated run), and without the wait they landed in the first half-second of the next
measurement, where they made most of the steady run's p99.

PostgreSQL gets a fresh database, dropped afterwards; Redis a fresh key prefix, deleted afterwards.
Results go to ``bench/results/secrets.json`` and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, stop, wait_ready

RESULTS = ROOT / "bench" / "results"
POSTGRES = os.environ.get("BASTION_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = ("sqlite", "postgres", "redis")
SECRETS_PER_BACKEND = 600  # x 100 views: enough reveals for every round


def env_for(backend: str, data_dir: Path, database_url: str | None, prefix: str) -> dict[str, str]:
    env = {
        "BASTION_ENV": "production",
        "BASTION_CRYPTO__KEYS": json.dumps({"bench": base64.b64encode(os.urandom(32)).decode()}),
        "BASTION_CRYPTO__ACTIVE_KEY_ID": "bench",
        "BASTION_CRON_SECRET": secrets.token_urlsafe(32),
        "BASTION_ALLOWED_HOSTS": "127.0.0.1,localhost,bench.example.com",
        "BASTION_SECURITY_CONTACT": "mailto:security@example.com",
        # High enough never to refuse, low enough that the Redis limiter's interval (window / limit, in ms)
        # stays above the float resolution of a millisecond timestamp (a billion per second does not).
        "BASTION_RATE_LIMITS__GENERAL": "10000000/minute",
        "BASTION_RATE_LIMITS__SECRETS_CREATE": "10000000/minute",
        "BASTION_RATE_LIMITS__SECRETS_READ": "10000000/minute",
        # Creates arrive from many clients (a random X-Forwarded-For per request, believed from loopback),
        # under the default live-secret cap per client: one client holding thousands of live secrets under a
        # raised cap would make every create count them all, which no real deployment does.
        "BASTION_TRUSTED_PROXIES": "127.0.0.1/32",
        "BASTION_SECRETS__MAX_TOTAL_BYTES": str(8 * 1024**3),
        "BASTION_DATA_DIR": str(data_dir),
        "BASTION_LOG_LEVEL": "info",
        "BASTION_WEB__ENABLED": "false",
    }
    if database_url:
        env.update(
            BASTION_DATABASE_URL=database_url,
            BASTION_AUTO_MIGRATE="true",
            BASTION_DB_POOL_SIZE="20",
            BASTION_DB_MAX_OVERFLOW="20",
        )
    if backend == "redis":
        env.update(BASTION_REDIS_URL=REDIS, BASTION_REDIS_PREFIX=prefix, BASTION_SECRETS__BACKEND="redis")
    return env


def start(env: dict[str, str], port: int, server: str, workers: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "bastion",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--server",
        server,
    ]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def settle(port: int, timeout: float = 15.0) -> None:
    """Wait until the server answers a probe quickly twice in a row: the backlog left by the previous
    load (requests wrk abandoned when it stopped, still being served) has drained."""
    deadline, quick = time.monotonic() + timeout, 0
    while quick < 2 and time.monotonic() < deadline:
        began = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=timeout) as response:
            response.read()
        quick = quick + 1 if time.perf_counter() - began < 0.01 else 0
        time.sleep(0.2)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port: int, script: Path, duration: float, connections: int) -> dict[str, float]:
    settle(port)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{int(duration)}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for name, label in (("p50_ms", "50%"), ("p99_ms", "99%")):
        match = re.search(label + r"\s+([\d.]+)(us|ms|s)", out)
        found[name] = _ms(match.group(1), match.group(2)) if match else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    found["non2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    found["socket_errors"] = 1.0 if errors else 0.0
    return found


def create_script(directory: Path) -> Path:
    path = directory / "create.lua"
    path.write_text(
        'wrk.method = "POST"\nwrk.path = "/api/secrets"\nwrk.headers["Content-Type"] = "application/json"\n'
        'wrk.body = \'{"secret":"bench-secret-0123456789-abcdefghij","ttl_seconds":300}\'\n'
        "request = function()\n"
        '  wrk.headers["X-Forwarded-For"] = "10." .. math.random(0, 255) .. "." .. math.random(0, 255)'
        ' .. "." .. math.random(1, 254)\n'
        "  return wrk.format()\nend\n"
    )
    return path


def reveal_script(directory: Path, name: str, ids: list[str], think_ms: int) -> Path:
    path = directory / f"reveal-{name}-{think_ms}.lua"
    listing = ",".join(f'"{i}"' for i in ids)
    # Random think times (uniform, mean think_ms): with a fixed one, the 200 clients would stay in step
    # and arrive as bursts of 200, measuring the queue behind a burst rather than a steady load.
    delay = f"function delay() return math.random(0, {2 * think_ms}) end\n" if think_ms else ""
    path.write_text(
        f"local ids = {{{listing}}}\nlocal n = 0\n"
        'local headers = {["Content-Type"] = "application/json"}\n'
        "function request()\n  n = n + 1\n"
        '  return wrk.format("POST", "/api/secrets/" .. ids[(n % #ids) + 1] .. "/reveal", headers, "{}")\nend\n' + delay
    )
    return path


async def seed(port: int, count: int) -> list[str]:
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as http:

        async def one(i: int) -> str:
            # from a client of its own each (the default cap allows 100 live secrets per client)
            response = await http.post(
                "/api/secrets",
                json={"secret": "revealed-in-the-bench", "max_views": 100, "ttl_seconds": 3600},
                headers={"X-Forwarded-For": f"10.255.{i // 250}.{i % 250 + 1}"},
            )
            response.raise_for_status()
            return str(response.json()["id"])

        return list(await asyncio.gather(*[one(i) for i in range(count)]))


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one HTTP/1.1 request on an open connection; return the status once the whole answer is read."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def race(port: int) -> dict[str, float]:
    """200 reveals of one 1-view secret, all sent at once on 200 open connections: the wall time until the
    last answer, and how many got the secret. Raw sockets rather than httpx, whose pool costs more than
    the server at this concurrency."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        secret = (await http.post("/api/secrets", json={"secret": "race"})).json()["id"]
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]
    request = (f"POST /api/secrets/{secret}/reveal HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n").encode()
    try:
        began = time.perf_counter()
        statuses = await asyncio.gather(*[_exchange(r, w, request) for r, w in connections])
        elapsed = time.perf_counter() - began
    finally:
        for _, writer in connections:
            writer.close()
    return {"race_ms": elapsed * 1000, "winners": float(statuses.count(200)), "others_404": float(statuses.count(404))}


async def admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def drop_redis_prefix(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    for start_at in range(0, len(keys), 1000):
        await client.delete(*keys[start_at : start_at + 1000])
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--think", type=int, default=1000, help="ms each of the 200 steady clients waits")
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--only", nargs="*", choices=BACKENDS)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (apt-get install wrk)")
    selected = [b for b in BACKENDS if not args.only or b in args.only]
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-secrets-"))
    database = f"bastion_bench_{uuid.uuid4().hex[:8]}"
    prefix = f"benchsec{uuid.uuid4().hex[:8]}:"
    ports = {name: 8850 + i for i, name in enumerate(BACKENDS)}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in selected}
    try:
        if "postgres" in selected:
            asyncio.run(admin(f'CREATE DATABASE "{database}"'))
        for name in selected:
            url = POSTGRES.rsplit("/", 1)[0] + "/" + database if name == "postgres" else None
            procs[name] = start(env_for(name, work / name, url, prefix), ports[name], args.server, args.workers)
        scripts = {}
        for name in selected:
            wait_ready(ports[name], "/health/ready", timeout=60.0)
            ids = asyncio.run(seed(ports[name], SECRETS_PER_BACKEND))
            scripts[name] = (reveal_script(work, name, ids, 0), reveal_script(work, name, ids, args.think))
            wrk(ports[name], scripts[name][0], 2.0, 64)  # warm-up (pools, caches)
        creating = create_script(work)
        for _ in range(args.rounds):
            for name in selected:
                row: dict[str, float] = {}
                created = wrk(ports[name], creating, args.duration, 64)
                row.update(create_rps=created["rps"], create_p99_ms=created["p99_ms"], create_non2xx=created["non2xx"])
                saturated = wrk(ports[name], scripts[name][0], args.duration, 200)
                row.update(
                    reveal_rps=saturated["rps"],
                    reveal_p50_ms=saturated["p50_ms"],
                    reveal_p99_ms=saturated["p99_ms"],
                    reveal_non2xx=saturated["non2xx"],
                )
                steady = wrk(ports[name], scripts[name][1], args.duration, 200)
                row.update(
                    steady_rps=steady["rps"],
                    steady_p50_ms=steady["p50_ms"],
                    steady_p99_ms=steady["p99_ms"],
                    steady_non2xx=steady["non2xx"],
                )
                settle(ports[name])
                row.update(asyncio.run(race(ports[name])))
                runs[name].append(row)
                print(name, {k: round(v, 2) for k, v in row.items()}, flush=True)
    finally:
        for proc in procs.values():
            stop(proc)
        if "postgres" in selected:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        if "redis" in selected:
            asyncio.run(drop_redis_prefix(prefix))
        shutil.rmtree(work, ignore_errors=True)
    report(runs, args)


def report(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    summary = {name: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for name, rows in runs.items()}
    for name, rows in runs.items():
        summary[name]["winners_all_rounds"] = [r["winners"] for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "secrets.json").write_text(
        json.dumps(
            {
                "rounds": args.rounds,
                "duration": args.duration,
                "think_ms": args.think,
                "server": args.server,
                "workers": args.workers,
                "backends": summary,
                "runs": runs,
            },
            indent=2,
        )
    )
    base = summary.get("sqlite")
    print(
        f"\n| backend ({args.server}, {args.workers} worker(s)) | create req/s | x SQLite | reveal req/s (c200) "
        f"| x SQLite | reveal p50 / p99 ms (c200) | steady p50 / p99 ms (200 clients, {args.think} ms think) "
        "| steady req/s | 200-reveal race ms | winners |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, s in summary.items():
        create_ratio = f"{s['create_rps'] / base['create_rps']:.2f}" if base else "-"
        reveal_ratio = f"{s['reveal_rps'] / base['reveal_rps']:.2f}" if base else "-"
        print(
            f"| {name} | {s['create_rps']:,.0f} | {create_ratio} | {s['reveal_rps']:,.0f} | {reveal_ratio} | "
            f"{s['reveal_p50_ms']:.1f} / {s['reveal_p99_ms']:.1f} | {s['steady_p50_ms']:.1f} / "
            f"{s['steady_p99_ms']:.1f} | {s['steady_rps']:,.0f} | {s['race_ms']:.0f} | "
            f"{s['winners_all_rounds']} |"
        )
    bad = {
        n: (s["create_non2xx"], s["reveal_non2xx"], s["steady_non2xx"])
        for n, s in summary.items()
        if s["create_non2xx"] or s["reveal_non2xx"] or s["steady_non2xx"]
    }
    if bad:
        print("non-2xx answers (create, reveal, steady), medians:", bad)


if __name__ == "__main__":
    main()
