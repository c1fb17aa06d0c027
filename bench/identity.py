"""Identity benchmark: what authentication costs per request, side by side with anonymous requests.

    uv run python bench/identity.py [--rounds 5] [--duration 6] [--server granian] [--redis]
    uv run python bench/identity.py --inproc [--rounds 9] [--requests 20000]

One Bastion server (one worker, production mode, JSON access log to /dev/null, rate limiting on with the
``general`` tier raised so nothing is refused) serves ``GET /hello`` from bench/apps/bastion_hello.py.
Before it starts, a user and an API key are made with ``bastion users create`` / ``bastion keys create``
against its database; once it runs, the user signs in for an access token. Then ``wrk -t1 -c64`` loads the
same route in interleaved rounds (anonymous, API key, access token, anonymous, ...) so that drift in the
machine hits all three alike; medians of the rounds are reported.

The figure that matters is the extra cost of an authenticated request: ``rps(anonymous) / rps(auth) - 1``
(the target for an API key is at most 15 %). Every authenticated request resolves its principal (a cache
hit after the first), and is rate-limited on the principal's own key instead of the address.
With ``--redis`` the limiter (and the revocation bus) use Redis. Results go to bench/results/identity-*.json.

``--inproc`` measures the same three kinds of request without a server or sockets: the app is called
directly, ``--requests`` at a time, in interleaved rounds; it reports microseconds per request. With no
network and no wrk in the loop it is much less sensitive to other load on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import APPS_DIR, ROOT, App, bastion_env, start, stop, wait_ready

RESULTS = ROOT / "bench" / "results"
PORT = 8870
EMAIL = "bench@example.com"
PASSWORD = "a benchmark password"


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bastion", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def login(port: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/auth/login",
        method="POST",
        data=json.dumps({"email": EMAIL, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        token: str = json.loads(response.read())["access_token"]
        return token


def wrk(port: int, duration: float, header: str | None) -> dict[str, float]:
    cmd = ["wrk", "-t1", "-c64", f"-d{int(duration)}s", "--latency"]
    if header:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}/hello"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)] if p99 else 0.0
    return {"rps": rps, "p99_ms": p99_ms, "non2xx": float(non2xx.group(1)) if non2xx else 0.0}


async def _inproc(rounds: int, requests: int) -> dict[str, list[float]]:
    """Per-request cost (us) of GET /hello through the whole app, called in-process."""
    import time

    from asgi_lifespan import LifespanManager

    from bastion.core.principal import Principal
    from bastion.identity.sessions import SessionMeta

    sys.path.insert(0, str(APPS_DIR))
    from bastion_hello import app  # the app reads the BASTION_* environment set by the caller

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"status {message['status']}")

    async with LifespanManager(app):
        parts = app.litestar.dependencies["identity"].dependency()  # the identity module's parts
        user = await parts.accounts.create_user(email=EMAIL, password=PASSWORD)
        _, key = await parts.api_keys.create(
            Principal("user", user.id, frozenset({"user"}), frozenset({"*"})), name="bench"
        )
        token = (await parts.signin.login(email=EMAIL, password=PASSWORD, meta=SessionMeta())).access_token
        kinds = {"anonymous": None, "api_key": key, "access_token": token}
        runs: dict[str, list[float]] = {name: [] for name in kinds}

        async def measure(credential: str | None, n: int) -> float:
            headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
            if credential:
                headers.append((b"authorization", b"Bearer " + credential.encode()))
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": "/hello",
                "raw_path": b"/hello",
                "query_string": b"",
                "root_path": "",
                "headers": headers,
                "client": ("127.0.0.1", 5000),
                "server": ("127.0.0.1", 8000),
                "state": {},
            }
            started = time.perf_counter()
            for _ in range(n):
                await app(dict(scope), receive, send)
            return (time.perf_counter() - started) / n * 1e6

        for credential in kinds.values():
            await measure(credential, 2000)  # warm-up (and the first, uncached, lookup)
        for _ in range(rounds):
            for name, credential in kinds.items():
                runs[name].append(await measure(credential, requests))
    return runs


def inproc(args: argparse.Namespace) -> None:
    import asyncio

    data_dir = tempfile.mkdtemp(prefix="bastion-identity-inproc-")
    env = bastion_env(data_dir, redis=args.redis)
    env["BASTION_RATE_LIMITS__GENERAL"] = "100000000/hour"
    env["BASTION_IDENTITY__BOOTSTRAP_OWNER"] = "false"
    os.environ.update(env)
    os.environ["BASTION_LOG_LEVEL"] = "warning"  # the access log would measure the terminal, not the app
    try:
        runs = asyncio.run(_inproc(args.rounds, args.requests))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    base = statistics.median(runs["anonymous"])
    store = "redis" if args.redis else "memory"
    summary = {
        name: {
            "us_per_request": round(statistics.median(us), 2),
            "runs": [round(u, 2) for u in us],
            "extra_cost_pct": round((statistics.median(us) / base - 1) * 100, 1),
        }
        for name, us in runs.items()
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"identity-inproc-{store}.json").write_text(
        json.dumps({"store": store, "rounds": args.rounds, "requests": args.requests, "runs": summary}, indent=2)
    )
    print(
        f"| GET /hello in-process ({store} limiter) | us/request (median of {args.rounds}) | extra cost vs anonymous |"
    )
    print("|---|---|---|")
    for name, row in summary.items():
        print(f"| {name} | {row['us_per_request']:.1f} | {row['extra_cost_pct']:+.1f} % |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--inproc", action="store_true")
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    if args.inproc:
        inproc(args)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (apt-get install wrk)")
    data_dir = tempfile.mkdtemp(prefix="bastion-identity-bench-")
    env = bastion_env(data_dir, redis=args.redis)
    # A limit no load reaches, yet coarse enough for the Redis limiter's millisecond arithmetic.
    env["BASTION_RATE_LIMITS__GENERAL"] = "100000000/hour"
    full_env = dict(os.environ, **env, PYTHONPATH=f"{APPS_DIR}:{ROOT / 'src'}")
    cli(full_env, "migrate")
    cli(full_env, "users", "create", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    key = re.search(r"key: (bsk_\S+)", cli(full_env, "keys", "create", "--user", EMAIL, "--name", "bench")).group(1)  # type: ignore[union-attr]

    app = App("bastion", "bastion_hello:app", APPS_DIR, env=env)
    proc = start(app, PORT, args.server)
    runs: dict[str, list[dict[str, float]]] = {"anonymous": [], "api_key": [], "access_token": []}
    try:
        wait_ready(PORT, "/hello")
        headers = {
            "anonymous": None,
            "api_key": f"Authorization: Bearer {key}",
            "access_token": f"Authorization: Bearer {login(PORT)}",
        }
        for header in headers.values():
            wrk(PORT, 2.0, header)  # warm-up (and the first, uncached, lookup)
        for _ in range(args.rounds):
            for name, header in headers.items():
                runs[name].append(wrk(PORT, args.duration, header))
    finally:
        stop(proc)
        shutil.rmtree(data_dir, ignore_errors=True)

    summary = {
        name: {
            "rps": statistics.median(r["rps"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            "non2xx": sum(r["non2xx"] for r in rs),
            "rps_runs": [r["rps"] for r in rs],
        }
        for name, rs in runs.items()
    }
    base = summary["anonymous"]["rps"]
    for row in summary.values():
        row["extra_cost_pct"] = round((base / row["rps"] - 1) * 100, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = "redis" if args.redis else "memory"
    (RESULTS / f"identity-{store}.json").write_text(
        json.dumps(
            {"server": args.server, "store": store, "duration": args.duration, "rounds": args.rounds, "runs": summary},
            indent=2,
        )
    )
    print(
        f"| GET /hello ({args.server}, 1 worker, {store} limiter, wrk -t1 -c64) | req/s (median of {args.rounds}) "
        "| extra cost per request vs anonymous | p99 ms | non-2xx |"
    )
    print("|---|---|---|---|---|")
    for name, row in summary.items():
        print(
            f"| {name} | {row['rps']:,.0f} | {row['extra_cost_pct']:+.1f} % | {row['p99_ms']:.2f} | "
            f"{row['non2xx']:.0f} |"
        )


if __name__ == "__main__":
    main()
