"""How cost grows with the work: the in-process rate limiter against 10^4 ... 10^6 distinct clients.

    python3 dev.py python bench/scale.py ratelimit [--clients 10000 100000 1000000] [--rate 5000]
    python3 dev.py python bench/scale.py ratelimit-served --requests 1000000 --port 8160
    python3 dev.py python bench/scale.py secrets-purge [--rows 1000000] [--src OTHER/src --label before]
    python3 dev.py python bench/scale.py secrets-reveal --rows 0 1000000
    python3 dev.py python bench/scale.py spark-kv-sqlite --rows 100 100000     (and spark-kv-postgres)

``ratelimit``: for each number of clients and each kind of address, a fresh process drives the limiter the
admission stage calls (``Limiter.check`` over the in-process backend, the ``general`` tier at its default
60/minute with the default ban multiplier and ``ADMISSION__MEMORY_MAX_CLIENTS``) with one request from each
distinct client, its clock advancing at ``--rate`` decisions per second (a worker serving at full rate), and
reports the CPU time per decision over the first 30,000 and the last 100,000 decisions (median of
batches of 10,000: at the end the table goes through phases of refusing and of replacing expired states,
each batch in one of them), the process's RSS, the states held
and how many new clients were refused. Kinds of address: ``ipv4`` (all distinct), ``ipv6-64s`` (each in its
own /64: nothing to group), ``ipv6-one-48`` (random addresses in 256 /64s of one /48: one subscriber).

``ratelimit-served``: ``bastion serve`` with ``--workers`` workers (production settings, ``general`` at
60/minute, 127.0.0.1 trusted as a proxy) under wrk sending each request from a new ``X-Forwarded-For``
address; samples the largest worker's RSS, the served rate and the 429s every 10 s.

``secrets-purge`` and ``secrets-reveal``: see ``bench/scale_secrets.py``.

Writes ``bench/results/scale-<part>.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, bastion_env

RESULTS = ROOT / "bench" / "results"
KINDS = ("ipv4", "ipv6-64s", "ipv6-one-48")


def rss_mb(pid: int | None = None) -> float:
    pages = int(Path(f"/proc/{pid or 'self'}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1_048_576


def address(kind: str, i: int) -> str:
    if kind == "ipv4":
        return f"ip:10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" if i < 1 << 24 else f"ip:11.0.0.{i & 255}"
    if kind == "ipv6-64s":
        return f"ip:2001:db8:{i >> 16 & 0xFFFF:x}:{i & 0xFFFF:x}::1"
    return f"ip:2001:db8:7:{i % 256:x}:{(i * 2654435761) & 0xFFFF:x}:{i >> 16:x}:{i & 0xFFFF:x}:1"


def limiter_child(clients: int, kind: str, rate: float) -> dict[str, float]:
    """Runs in a fresh process: ``clients`` decisions, one per distinct client."""
    import inspect

    from bastion.core.platform import build_tiers
    from bastion.core.ratelimit import Limiter, MemoryRateLimitBackend
    from bastion.core.settings import CoreSettings, Rate

    settings = CoreSettings(_env_file=None)  # type: ignore[call-arg]
    now = [1.7e9]
    params = inspect.signature(MemoryRateLimitBackend).parameters
    size = {"max_clients": settings.admission.memory_max_clients} if "max_clients" in params else {}
    backend = MemoryRateLimitBackend(clock=lambda: now[0], **size)  # type: ignore[arg-type]
    limiter = Limiter(backend, build_tiers(settings, {"general": (Rate(60, 60), False)}))
    step = 1.0 / rate
    start_rss = rss_mb()
    batch = 10_000
    timings: list[float] = []

    async def drive() -> None:
        for first in range(0, clients, batch):
            chunk = [address(kind, i) for i in range(first, min(first + batch, clients))]  # made untimed
            t0 = time.process_time()  # CPU time: steadier than wall time on a shared machine
            for key in chunk:
                now[0] += step
                await limiter.check("general", key)
            timings.append((time.process_time() - t0) / len(chunk) * 1e6)

    asyncio.run(drive())
    held = backend.size() if hasattr(backend, "size") else len(getattr(backend, "_attempts", {}))
    return {
        "clients": clients,
        "first_us": round(statistics.median(timings[:3]), 2),
        "last_us": round(statistics.median(timings[-10:]), 2),
        "max_us": round(max(timings), 2),
        "rss_mb_start": round(start_rss, 1),
        "rss_mb_end": round(rss_mb(), 1),
        "held": held,
        "refused": getattr(backend, "refused", 0),
    }


def ratelimit(args: argparse.Namespace) -> None:
    rows = []
    for kind in args.kinds:
        for clients in args.clients:
            out = subprocess.run(
                [sys.executable, __file__, "_child", str(clients), kind, str(args.rate)],
                capture_output=True,
                text=True,
                check=True,
                env=dict(os.environ, PYTHONPATH=args.src or str(ROOT / "src")),
            ).stdout
            row = {"kind": kind, **json.loads(out.strip().splitlines()[-1])}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    name = "scale-ratelimit" + ("-" + args.label if args.label else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"rate": args.rate, "rows": rows}, indent=2))
    print(
        "| addresses | distinct clients | CPU µs/decision, first 30k | last 100k | end ÷ start | RSS MB "
        "| states held | refused |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['kind']} | {r['clients']:,} | {r['first_us']} | {r['last_us']} | "
            f"{r['last_us'] / r['first_us']:.2f}× | {r['rss_mb_end']} | {r['held']:,} | {r['refused']:,} |"
        )


WRK_SCRIPT = """
local n = tonumber(os.getenv("SCALE_OFFSET") or "0")
request = function()
  n = n + 1
  local a = string.format("%d.%d.%d.%d", 10 + math.floor(n / 16777216) % 100, math.floor(n / 65536) % 256,
                          math.floor(n / 256) % 256, n % 256)
  return wrk.format("GET", "/hello", {["Host"] = "127.0.0.1", ["X-Forwarded-For"] = a})
end
"""
# (wrk's Lua has no bit operators; with a headers table wrk sends no Host of its own. A script wrk cannot
# load is reported on stderr and the run goes on with plain requests: the served part checks the 2xx count.)


def served(args: argparse.Namespace) -> None:
    data_dir = tempfile.mkdtemp(prefix="bastion-scale-")
    env = dict(
        os.environ,
        **bastion_env(data_dir, redis=False),
        PYTHONPATH=f"{ROOT / 'bench' / 'apps'}:{args.src or ROOT / 'src'}",
    )
    env["BASTION_RATE_LIMITS__GENERAL"] = "60/minute"
    env["BASTION_TRUSTED_PROXIES"] = "127.0.0.1"
    script = Path(data_dir) / "distinct.lua"
    script.write_text(WRK_SCRIPT)
    cmd = [sys.executable, "-m", "bastion", "serve", "--app", "bastion_hello:create", "--port", str(args.port)]
    cmd += ["--workers", str(args.workers)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    samples = []
    try:
        _wait(args.port)
        time.sleep(2)
        workers = _workers(proc.pid)

        def rss() -> float:  # the largest worker's
            return round(max(rss_mb(pid) for pid in workers), 1)

        samples.append({"requests": 0, "rss_mb": rss(), "rps": 0, "p99_ms": 0.0, "refused": 0})
        total = 0
        while total < args.requests:
            out = subprocess.run(
                ["wrk", "-t1", "-c32", "-d10s", "--latency", "-s", str(script), f"http://127.0.0.1:{args.port}/"],
                capture_output=True, text=True, check=True, env=dict(os.environ, SCALE_OFFSET=str(total)),
            ).stdout  # fmt: skip
            done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
            non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
            refused = int(non2xx.group(1)) if non2xx else 0
            if total == 0 and refused > done // 2:
                raise RuntimeError(f"most requests of the first round failed: {out}")
            total += done
            p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)] if p99 else 0.0
            samples.append({
                "requests": total, "rss_mb": rss(), "rps": round(done / 10), "refused": refused,
                "p99_ms": round(float(p99.group(1)) * scale, 2) if p99 else 0.0,
            })  # fmt: skip
            print(json.dumps(samples[-1]), file=sys.stderr)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    name = f"scale-ratelimit-served-{args.workers}w" + ("-" + args.label if args.label else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(samples, indent=2))
    print(
        f"| distinct addresses so far ({args.workers} worker(s)) | largest worker's RSS MB | req/s (last 10 s) "
        "| of which 429 | p99 ms |"
    )
    print("|---|---|---|---|---|")
    for s in samples:
        print(f"| {s['requests']:,} | {s['rss_mb']} | {s['rps']:,} | {s['refused']:,} | {s['p99_ms']} |")


def _wait(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start") from None
            time.sleep(0.2)


def _workers(leader: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != leader:
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[2]) == leader:  # same process group
                found.append(int(entry.name))
    return found or [leader]


def secrets_part(args: argparse.Namespace) -> None:
    part = args.part.removeprefix("secrets-").removeprefix("spark-")
    rows = []
    for count in args.rows:
        out = subprocess.run(
            [sys.executable, __file__, "_secrets", part, str(count)],
            capture_output=True, text=True, check=True,
            env=dict(os.environ, PYTHONPATH=f"{args.src or ROOT / 'src'}:{ROOT / 'bench'}"),
        ).stdout  # fmt: skip
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    name = f"scale-{args.part}" + ("-" + args.label if args.label else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2))
    if part == "purge":
        print(
            "| rows | sum over the table ms | first purge s | next purge s | dropped | create p50 idle ms "
            "| create p99 idle | during purges: p50 | max | creates |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['rows']:,} | {r.get('table_sum_ms', '-')} | {r['purge_s']} | {r.get('next_purge_s', '-')} "
                f"| {r['dropped']:,} | "
                f"{r['create_idle_p50_ms']} | "
                f"{r['create_idle_p99_ms']} | {r['create_during_p50_ms']} | {r['create_during_max_ms']} | "
                f"{r['creates_during']} |"
            )
    elif part.startswith("kv-"):
        print("| backend | keys in the app | get p50 ms | get p99 ms | list p50 ms | keys listed |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['backend']} | {r['keys']:,} | {r['get_p50_ms']} | {r['get_p99_ms']} | {r['list_p50_ms']} "
                f"| {r['listed']:,} |"
            )
    else:
        print("| other rows in the table | claims/s (16 concurrent) | p50 ms | p99 ms |")
        print("|---|---|---|---|")
        for r in rows:
            print(f"| {r['rows']:,} | {r['per_s']:,} | {r['p50_ms']} | {r['p99_ms']} |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        print(json.dumps(limiter_child(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_secrets":
        import scale_secrets

        print(json.dumps(scale_secrets.run(sys.argv[2], int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "part",
        choices=[
            "ratelimit",
            "ratelimit-served",
            "secrets-purge",
            "secrets-reveal",
            "spark-kv-sqlite",
            "spark-kv-postgres",
        ],
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--clients", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8160)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--src", help="another source tree to measure (e.g. the code before a change)")
    parser.add_argument("--label", default="", help="suffix of the results file")
    args = parser.parse_args()
    parts = {"ratelimit": ratelimit, "ratelimit-served": served}
    parts.get(args.part, secrets_part)(args)


if __name__ == "__main__":
    main()
