"""AI gateway benchmark: a fake upstream called directly, through Bastion, and through LiteLLM's proxy, side by side.

    uv run python bench/ai.py [--rounds 3] [--duration 5] [--streams 1000] [--litellm-venv /tmp/litellm-venv]
                              [--baseline DIR] [--no-litellm]

Everything runs on loopback with one worker each: the upstream is the peers' ``fake_openai.py`` (uvicorn,
port 9100); Bastion serves ``bench/apps/bastion_hello.py`` under granian in production mode (JSON access
log, rate limiting on with the ``ai`` tier raised so nothing is refused, a real API key made with
``bastion keys create`` and resolved by the identity module on every request); LiteLLM runs
``litellm --config ../shared/peers/litellm.yaml --num_workers 1`` from its own virtualenv (install it with
``uv venv /tmp/litellm-venv && uv pip install --python /tmp/litellm-venv 'litellm[proxy]'``), with one extra
model, ``hold``, for the idle-stream phase.

Load is ``wrk -t1`` posting an OpenAI chat body, non-streaming and streaming, at concurrency 1 (latency) and
32 (throughput), in interleaved rounds (direct, Bastion, LiteLLM, direct, ...) so that drift in the shared
machine hits all three alike; medians of the rounds are reported. Added latency is the gateway's latency
minus the direct one in the same round. Then 1,000 streams are opened through each gateway to an upstream
that sends one chunk and goes silent (``bench/apps/ai_idle_upstream.py``), and the worker's resident memory
is read from /proc while they are all open. Results go to bench/results/ai.json.

Beside each gateway's requests per second at concurrency 32 it reports the server's own CPU time per request
(utime + stime of its process group over the requests served). ``--baseline DIR`` adds ``bastion@base``, the
same gateway from another checkout (``git worktree add ../base <commit>``) on the same database and API key,
to measure a change before and after in one run; ``--no-litellm`` leaves LiteLLM out (and the memory phase).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import APPS_DIR, PEERS, ROOT, App, bastion_env, cpu_seconds, start, stop, wait_ready

RESULTS = ROOT / "bench" / "results"
UPSTREAM_PORT, IDLE_PORT, BASTION_PORT, BASE_PORT, LITELLM_PORT = 9100, 9101, 8880, 8881, 9200
EMAIL = "ai-bench@example.com"
TARGETS = ["direct", "bastion", "litellm"]


def body(model: str, stream: bool) -> str:
    payload: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "Hello!"}]}
    if stream:
        payload["stream"] = True
    return json.dumps(payload)


def lua(directory: Path, name: str, payload: str, auth: str | None) -> Path:
    path = directory / f"{name}.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(payload)}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    if auth:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {auth}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(url: str, script: Path, connections: int, duration: float, pgid: int | None = None) -> dict[str, float]:
    before = cpu_seconds(pgid) if pgid else 0.0
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = cpu_seconds(pgid) - before if pgid else 0.0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    served = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    found: dict[str, float] = {
        "rps": rps,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
        "cpu_us": cpu / served * 1e6 if pgid and served else float("nan"),
    }
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        found[f"p{pct}_ms"] = (
            float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)] if match else float("nan")
        )
    return found


def group_rss_mb(leader: int) -> dict[str, float]:
    """Resident memory of every process in ``leader``'s process group: the leader and the rest (workers)."""
    sizes = {"leader": 0.0, "others": 0.0}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) != leader:
                continue
            rss = int((entry / "statm").read_text().split()[1]) * page / 1_048_576
        except (OSError, IndexError, ValueError):
            continue
        sizes["leader" if int(entry.name) == leader else "others"] += rss
    return sizes


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


def start_process(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def wait_http(url: str, timeout: float = 120.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port}")


async def hold_streams(
    port: int, auth: str | None, count: int, rss: Any, limit_seconds: float = 120.0
) -> dict[str, float]:
    """Open ``count`` streams to model ``hold``, wait until each has its first chunk, then read ``rss()``."""
    payload = body("hold", stream=True).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n" + (f"Authorization: Bearer {auth}\r\n" if auth else "") + "\r\n"
    )
    opened: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(64)
    ready = 0

    async def one() -> None:
        nonlocal ready
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            opened.append(writer)
            writer.write(head.encode() + payload)
            seen = b""
            while b"data:" not in seen:
                chunk = await reader.read(4096)
                if not chunk:
                    raise RuntimeError("stream closed before its first chunk: " + seen[:200].decode(errors="replace"))
                seen += chunk
            ready += 1

    began = time.monotonic()
    try:
        # A gateway that cannot open them all in time (or drops some) is reported as such, not as a crash.
        timed_out = 0.0
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*[one() for _ in range(count)], return_exceptions=True), timeout=limit_seconds
            )
            failed = float(sum(1 for o in outcomes if isinstance(o, BaseException)))
        except TimeoutError:
            timed_out, failed = 1.0, float(count - ready)
        await asyncio.sleep(2.0)  # let the servers settle (buffers, lazily created state) before reading memory
        return {
            **rss(),
            "open_streams": float(ready),
            "failed_streams": failed,
            "timed_out": timed_out,
            "open_seconds": round(time.monotonic() - began, 1),
        }
    finally:
        for writer in opened:
            writer.transport.abort()


def litellm_config(directory: Path) -> Path:
    """The peers' litellm.yaml, plus the ``hold`` model for the idle-stream phase."""
    text = (PEERS / "litellm.yaml").read_text()
    extra = (
        "  - model_name: hold\n    litellm_params:\n      model: openai/hold\n"
        f"      api_base: http://127.0.0.1:{IDLE_PORT}/v1\n      api_key: sk-fake\n"
        "      timeout: 3600\n      stream_timeout: 3600\n"
    )
    text = text.replace("litellm_settings:", extra + "litellm_settings:", 1)
    path = directory / "litellm.yaml"
    path.write_text(text)
    return path


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--litellm-venv", type=Path, default=Path("/tmp/litellm-venv"))
    parser.add_argument("--baseline", type=Path, help="another checkout of Bastion, served as bastion@base")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM (and the memory phase) out")
    args = parser.parse_args()
    litellm_python = args.litellm_venv / "bin" / "python"
    if shutil.which("wrk") is None or (not args.no_litellm and not litellm_python.exists()):
        sys.exit("needs wrk (apt-get install wrk) and LiteLLM's venv (see the docstring), or --no-litellm")
    TARGETS[:] = [
        "direct",
        "bastion",
        *(["bastion@base"] if args.baseline else []),
        *([] if args.no_litellm else ["litellm"]),
    ]

    work = Path(tempfile.mkdtemp(prefix="bastion-ai-bench-"))
    env = bastion_env(str(work / "data"), redis=False)
    env.update(
        {
            "BASTION_RATE_LIMITS__AI": "1000000000/second",
            "BASTION_AI__PROVIDERS__FAKE__KIND": "openai",
            "BASTION_AI__PROVIDERS__FAKE__API_KEY": "sk-fake",
            "BASTION_AI__PROVIDERS__FAKE__BASE_URL": f"http://127.0.0.1:{UPSTREAM_PORT}/v1",
            "BASTION_AI__PROVIDERS__HOLD__KIND": "openai",
            "BASTION_AI__PROVIDERS__HOLD__API_KEY": "sk-fake",
            "BASTION_AI__PROVIDERS__HOLD__BASE_URL": f"http://127.0.0.1:{IDLE_PORT}/v1",
            "BASTION_AI__PROVIDERS__HOLD__READ_TIMEOUT_SECONDS": "3600",
            "BASTION_AI__MODELS": json.dumps({"fake": ["fake:fake"], "hold": ["hold:hold"]}),
        }
    )
    full_env = dict(os.environ, **env, PYTHONPATH=f"{APPS_DIR}:{ROOT / 'src'}")
    cli(full_env, "migrate")
    cli(full_env, "users", "create", "--email", EMAIL, "--password-stdin", stdin="a benchmark password\n")
    key_out = cli(full_env, "keys", "create", "--user", EMAIL, "--name", "ai-bench", "--app", "bench")
    bastion_key = re.search(r"key: (bsk_\S+)", key_out).group(1)  # type: ignore[union-attr]
    master = "sk-" + os.urandom(16).hex()

    procs: dict[str, subprocess.Popen[bytes]] = {}
    plain_env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    try:
        procs["upstream"] = start_process(
            [
                sys.executable if args.no_litellm else str(litellm_python),
                "-m",
                "uvicorn",
                "fake_openai:app",
                "--port",
                str(UPSTREAM_PORT),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            PEERS,
            plain_env,
        )
        procs["idle"] = start_process(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "ai_idle_upstream:app",
                "--port",
                str(IDLE_PORT),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            APPS_DIR,
            plain_env,
        )
        procs["bastion"] = start(App("bastion", "bastion_hello:app", APPS_DIR, env=env), BASTION_PORT, "granian")
        if args.baseline:
            base = args.baseline.resolve()
            base_env = dict(env, BASTION_AUTO_MIGRATE="false")  # the database is migrated by this checkout
            procs["bastion@base"] = start(
                App("bastion@base", "bastion_hello:app", base / "bench" / "apps", env=base_env, src=base / "src"),
                BASE_PORT,
                "granian",
            )
        if not args.no_litellm:
            procs["litellm"] = start_process(
                [
                    str(args.litellm_venv / "bin" / "litellm"),
                    "--config",
                    str(litellm_config(work)),
                    "--port",
                    str(LITELLM_PORT),
                    "--num_workers",
                    "1",
                ],
                work,
                dict(plain_env, LITELLM_MASTER_KEY=master, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR"),
            )
        wait_port(UPSTREAM_PORT)
        wait_ready(BASTION_PORT, "/hello")
        if args.baseline:
            wait_ready(BASE_PORT, "/hello")
        if not args.no_litellm:
            wait_http(f"http://127.0.0.1:{LITELLM_PORT}/health/liveliness")
        time.sleep(1.0)

        urls = {
            t: f"http://127.0.0.1:{port}/v1/chat/completions"
            for t, port in (
                ("direct", UPSTREAM_PORT),
                ("bastion", BASTION_PORT),
                ("bastion@base", BASE_PORT),
                ("litellm", LITELLM_PORT),
            )
            if t in TARGETS
        }
        auth = {"direct": None, "bastion": bastion_key, "bastion@base": bastion_key, "litellm": master}
        scripts = {
            (t, mode): lua(work, f"{t}-{mode}", body("fake", mode == "stream"), auth[t])
            for t in TARGETS
            for mode in ("plain", "stream")
        }
        for (t, _mode), script in scripts.items():
            wrk(urls[t], script, 32, 2.0)  # warm-up
        runs: dict[str, list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            for mode in ("plain", "stream"):
                for connections in (1, 32):
                    for t in TARGETS:
                        runs.setdefault(f"{mode}/c{connections}/{t}", []).append(
                            wrk(
                                urls[t],
                                scripts[(t, mode)],
                                connections,
                                args.duration,
                                pgid=procs[t].pid if t in procs else None,
                            )
                        )

        memory = (
            {}
            if args.no_litellm
            else {
                "bastion": {
                    "idle": group_rss_mb(procs["bastion"].pid),
                    **asyncio.run(
                        hold_streams(
                            BASTION_PORT, bastion_key, args.streams, lambda: group_rss_mb(procs["bastion"].pid)
                        )
                    ),
                },
                "litellm": {
                    "idle": group_rss_mb(procs["litellm"].pid),
                    **asyncio.run(
                        hold_streams(LITELLM_PORT, master, args.streams, lambda: group_rss_mb(procs["litellm"].pid))
                    ),
                },
            }
        )
    finally:
        for proc in procs.values():
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    report(runs, memory, args)


def report(runs: dict[str, list[dict[str, float]]], memory: dict[str, Any], args: argparse.Namespace) -> None:
    summary: dict[str, Any] = {
        name: {
            "rps": median([r["rps"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "non2xx": sum(r["non2xx"] for r in rs),
            "socket_errors": sum(r["socket_errors"] for r in rs),
            "rps_runs": [r["rps"] for r in rs],
            "cpu_us": median([r["cpu_us"] for r in rs]),
        }
        for name, rs in runs.items()
    }
    added: dict[str, Any] = {}
    for mode in ("plain", "stream"):
        direct = runs[f"{mode}/c1/direct"]
        for t in TARGETS[1:]:
            mine = runs[f"{mode}/c1/{t}"]
            added[f"{mode}/{t}"] = {
                "p50_ms": median([m["p50_ms"] - d["p50_ms"] for m, d in zip(mine, direct, strict=True)]),
                "p99_ms": median([m["p99_ms"] - d["p99_ms"] for m, d in zip(mine, direct, strict=True)]),
            }
    other = TARGETS[-1]  # LiteLLM, or bastion@base without it
    ratios = {
        mode: round(summary[f"{mode}/c32/bastion"]["rps"] / summary[f"{mode}/c32/{other}"]["rps"], 2)
        for mode in ("plain", "stream")
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ai.json").write_text(
        json.dumps(
            {
                "rounds": args.rounds,
                "duration": args.duration,
                "runs": summary,
                "added_latency_c1": added,
                "targets": TARGETS,
                f"throughput_ratio_bastion_over_{other}_c32": ratios,
                "memory_mb": memory,
            },
            indent=2,
        )
    )
    gateways = TARGETS[1:]
    print(
        f"| wrk -t1, {args.duration:.0f} s x {args.rounds} interleaved rounds (medians) | "
        + " | ".join(TARGETS)
        + f" | bastion / {other} |"
    )
    print("|---" * (len(TARGETS) + 2) + "|")
    blank = " |" * len(gateways)
    for mode in ("plain", "stream"):
        label = "non-streaming" if mode == "plain" else "streaming"
        row = " | ".join(f"{summary[f'{mode}/c32/{t}']['rps']:,.0f}" for t in TARGETS)
        print(f"| {label}, c32: req/s | {row} | {ratios[mode]} x |")
        cpu = " | ".join(f"{summary[f'{mode}/c32/{t}']['cpu_us']:.0f}" for t in gateways)
        print(f"| {label}, c32: server CPU µs/request | |{' ' + cpu} | |")
        p50 = " | ".join(f"{summary[f'{mode}/c1/{t}']['p50_ms']:.2f}" for t in TARGETS)
        print(f"| {label}, c1: median latency ms | {p50} | |")
        extra = " | ".join(
            f"{added[f'{mode}/{t}']['p50_ms']:.2f} / {added[f'{mode}/{t}']['p99_ms']:.2f}" for t in gateways
        )
        print(f"| {label}, c1: added latency, median / p99 ms | | {extra} | |")
    for name, found in memory.items():
        print(
            f"| {name}: RSS MB idle -> with {found['open_streams']:.0f} of {args.streams} streams open "
            f"(leader / workers){' (timed out opening the rest)' if found['timed_out'] else ''} | "
            f"{found['idle']['leader']:.0f} / {found['idle']['others']:.0f} -> "
            f"{found['leader']:.0f} / {found['others']:.0f} |{blank} |"
        )
    bad = {k: (v["non2xx"], v["socket_errors"]) for k, v in summary.items() if v["non2xx"] or v["socket_errors"]}
    if bad:
        print("non-2xx / socket errors:", bad)


if __name__ == "__main__":
    main()
