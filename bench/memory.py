"""Memory of one worker: idle RSS after start-up, and RSS over a million requests.

    uv run python bench/memory.py [--requests 1000000] [--server granian] [--redis]

Starts ``bastion serve`` (one worker, production settings, JSON access log to /dev/null, rate limiting on
with the ``general`` tier raised so nothing is refused) with the benchmark route ``GET /hello``, records
the worker's RSS once it is ready and idle, then drives wrk in 10-second rounds until the requested number
of requests has been served, sampling RSS after each round. Writes ``bench/results/memory-<server>.json``
and prints a Markdown summary: idle RSS, RSS after the first round (the warmed-up baseline), final RSS,
and the drift of the final from the warmed-up RSS in percent.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, bastion_env

RESULTS = ROOT / "bench" / "results"


def worker_pids(leader: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == leader:
            continue
        try:
            stat = (entry / "stat").read_text().split()
        except OSError:
            continue
        if int(stat[4]) == leader and "python" in (entry / "comm").read_text():
            found.append(int(entry.name))
    return found


def rss_mb(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1_048_576


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--port", type=int, default=8870)
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="bastion-mem-")
    env = dict(
        os.environ, **bastion_env(data_dir, redis=args.redis), PYTHONPATH=f"{ROOT / 'bench' / 'apps'}:{ROOT / 'src'}"
    )
    cmd = [
        sys.executable,
        "-m",
        "bastion",
        "serve",
        "--app",
        "bastion_hello:create",
        "--port",
        str(args.port),
        "--workers",
        "1",
        "--server",
        args.server,
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{args.port}/hello"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/health/ready", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.2)
        time.sleep(3)  # idle: let start-up work and the first samplers settle
        workers = worker_pids(proc.pid) if args.server == "granian" else [proc.pid]
        worker = workers[0]
        idle = rss_mb(worker)
        samples: list[tuple[int, float]] = []
        served = 0
        while served < args.requests:
            out = subprocess.run(
                ["wrk", "-t1", "-c64", "-d10s", url], capture_output=True, text=True, check=True
            ).stdout
            served += int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
            samples.append((served, rss_mb(worker)))
            print(f"{served:>9,} requests  RSS {samples[-1][1]:.1f} MB", file=sys.stderr)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    warmed = samples[0][1]
    final = samples[-1][1]
    summary = {
        "server": args.server,
        "redis": args.redis,
        "idle_rss_mb": round(idle, 1),
        "warmed_rss_mb": round(warmed, 1),
        "final_rss_mb": round(final, 1),
        "max_rss_mb": round(max(s[1] for s in samples), 1),
        "requests": served,
        "drift_percent": round((final - warmed) / warmed * 100, 2),
        "samples": samples,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"memory-{args.server}{'-redis' if args.redis else ''}.json").write_text(json.dumps(summary, indent=2))
    print(f"| server | idle RSS MB | after first 10 s | after {served:,} requests | max | drift |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.server}{' + Redis' if args.redis else ''} | {idle:.1f} | {warmed:.1f} | {final:.1f} | "
        f"{summary['max_rss_mb']} | {summary['drift_percent']:+.2f} % |"
    )


if __name__ == "__main__":
    main()
