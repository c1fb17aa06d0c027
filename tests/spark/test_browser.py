"""A real Spark app, hosted by ``bastion serve`` alone, in headless Chromium.

The app (tests/spark/app: GitHub's spark-template shape, Vite + React + the stock ``@github/spark`` 0.46.15
client, unmodified) is installed from the npm registry (cached in ``~/.cache/bastion-npm`` between runs) and
built once per session; Bastion runs as a subprocess (``bastion spark add`` registers the app,
``bastion users create`` the user), configured only through ``BASTION_*``. One journey, in order:
private app → sign-in page → back in the app → KV persists across reloads → the db collection lists what was
inserted → spark.llm answers (the local provider) → 60 s of typing at 10 characters a second through useKV
loses nothing and outlasts the 30 s access token (still signed in) → a second app does not see the first's
data → a public app serves an anonymous visitor → a cross-site POST with the session cookie changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

from tests.conftest import need
from tests.process.conftest import ServerProcess, bastion, free_port, serve_command, server_env
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, screenshot_path

APP_SOURCE = Path(__file__).parent / "app"
NPM_CACHE = Path(os.environ.get("BASTION_NPM_CACHE", Path.home() / ".cache" / "bastion-npm"))
EMAIL, PASSWORD = "ada@example.com", "a long browser password"
ACCESS_SECONDS = 30

pytestmark = pytest.mark.timeout(600)


def _npm(*args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        ["npm", *args, "--cache", str(NPM_CACHE), "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"npm {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="session")
def built_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``npm ci`` (skipped when node_modules matches the lock file) and ``vite build``; the dist/ folder."""
    need("npm", shutil.which("npm") is not None, "apt-get install -y nodejs npm")
    installed = APP_SOURCE / "node_modules" / ".package-lock.json"
    lock = APP_SOURCE / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        _npm("ci", "--prefer-offline", cwd=APP_SOURCE)
    dist = tmp_path_factory.mktemp("spark") / "dist"
    _npm("run", "build", cwd=APP_SOURCE, env={"OUTPUT_DIR": str(dist)})  # the Spark plugin's outDir setting
    assert (dist / "index.html").is_file()
    return dist


@pytest.fixture
def server(built_app: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    env = server_env(
        tmp_path / "data",
        allowed_hosts="localhost,127.0.0.1,*.localhost",
        identity__access_token_seconds=str(ACCESS_SECONDS),
        identity__bootstrap_owner="false",
        identity__argon2_memory_kib="1024",
        identity__argon2_time_cost="1",
        log_level="info",
    )
    for name, host, extra in (("notes", "notes.localhost", ()), ("board", "board.localhost", ("--public",))):
        added = bastion("spark", "add", name, str(built_app), "--host", host, *extra, env=env, cwd=tmp_path)
        assert added.returncode == 0, added.stderr
    created = subprocess.run(
        [*serve_command()[:3], "users", "create", "--email", EMAIL, "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    process = ServerProcess(
        [*serve_command()[:4], "--port", str(port)], env=env, cwd=tmp_path, port=port, log=tmp_path / "server.log"
    )
    try:
        process.wait_ready()
        yield process
    finally:
        process.kill_group()


@pytest.fixture
def chromium() -> str:
    need("chromium", os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


class Watch:
    """Every /_spark/ and /auth/ response with its status, and script errors and CSP violations."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.problems: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("response", self._response)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: self.problems.append(m.text) if m.type == "error" and "Content-Security" in m.text else None,
        )

    def _response(self, response: Any) -> None:
        if response.status == 404 and response.request.method == "GET" and "/_spark/kv/" in response.url:
            return  # a key not yet stored: the client's getKey reads 404 as undefined (useKV then stores it)
        if ("/_spark/" in response.url or "/auth/" in response.url) and response.status >= 400:
            self.failures.append(f"{response.request.method} {response.url} {response.status}")


async def _text(page: Any, testid: str) -> str:
    return str(await page.get_by_test_id(testid).text_content())


async def _stored(page: Any, key: str, value: Any, timeout: float = 30.0) -> None:
    """Wait until the app's KV holds ``value`` under ``key`` (read as the client does, from the page).
    (Not Playwright's "networkidle": Chromium keeps a fetch whose body the client never reads, such as a
    404 from getKey, counted as in flight.)"""
    deadline = asyncio.get_running_loop().time() + timeout
    expected = json.dumps(value)
    while True:
        text = await page.evaluate("key => fetch('/_spark/kv/' + encodeURIComponent(key)).then(r => r.text())", key)
        if text == expected or json.loads(text or "null") == value:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{key} holds {text[:200]!r}"
        await asyncio.sleep(0.25)


async def test_a_spark_app_hosted_by_bastion(server: ServerProcess, browser: Any) -> None:
    notes = f"http://notes.localhost:{server.port}"
    board = f"http://board.localhost:{server.port}"
    watch = Watch()
    ada = await browser.new_context()
    page = await ada.new_page()
    watch.attach(page)

    # Private app: the sign-in page first, then back where the visitor was going.
    await page.goto(notes + "/lists/groceries?view=all")
    assert page.url.startswith(notes + "/auth/signin?next=")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(notes + "/lists/groceries?view=all")
    await page.get_by_test_id("user").filter(has_text="signed in as").wait_for()
    assert await _text(page, "user") == "signed in as ada"

    # useKV persists across reloads.
    await page.get_by_test_id("note").fill("first words")
    await _stored(page, "note", "first words")
    await page.reload()
    await page.get_by_test_id("user").filter(has_text="signed in").wait_for()
    await expect(page.get_by_test_id("note")).to_have_value("first words")

    # @github/spark/db: inserted documents are listed (and survive a reload).
    for title in ("milk", "bread"):
        await page.get_by_test_id("todo-title").fill(title)
        await page.get_by_test_id("todo-add").click()
        await page.get_by_test_id("todos").filter(has_text=title).wait_for()
    await page.reload()
    await page.get_by_test_id("todo-refresh").click()
    await page.get_by_test_id("todos").filter(has_text="bread").wait_for()
    assert await page.get_by_test_id("todos").locator("li").all_text_contents() == ["milk", "bread"]

    # spark.llm answers through Bastion's AI gateway (the local development provider).
    await page.get_by_test_id("ask").click()
    await page.get_by_test_id("answer").filter(has_text=" ").wait_for()
    answer = await _text(page, "answer")
    assert answer and not answer.startswith("error"), answer

    # 60 s of typing at 10 characters a second (every keystroke a useKV write), past the access token's life.
    typed = "".join("abcdefghij"[i % 10] if i % 7 else " " for i in range(600))
    box = page.get_by_test_id("note")
    await box.fill("")
    await box.press_sequentially(typed, delay=100, timeout=180_000)
    await _stored(page, "note", typed)
    await page.reload()
    await page.get_by_test_id("user").filter(has_text="signed in").wait_for()
    await expect(page.get_by_test_id("note")).to_have_value(typed)
    assert await _text(page, "user") == "signed in as ada"  # still signed in after the access token expired
    await page.get_by_test_id("todo-title").fill("after expiry")
    await page.get_by_test_id("todo-add").click()
    await page.get_by_test_id("todos").filter(has_text="after expiry").wait_for()
    await page.screenshot(path=screenshot_path("spark-notes.png"))

    # A second app on the same Bastion: none of the first app's data.
    other = await ada.new_page()
    watch.attach(other)
    await other.goto(board + "/")
    await other.get_by_test_id("user").filter(has_text="anonymous").wait_for()  # cookies are per host
    await _stored(other, "note", "")  # useKV's initial value, stored by the client: not the first app's text
    assert await other.get_by_test_id("note").input_value() == ""
    keys = await other.evaluate("window.spark.kv.keys()")
    collection = await other.evaluate("fetch('/_spark/db/collections/todos').then(r => r.json())")
    assert keys == ["note"] and collection == []

    # A public app with an anonymous visitor (a fresh browser): spark.user() is null, the KV works.
    visitor = await browser.new_context()
    anon = await visitor.new_page()
    watch.attach(anon)
    await anon.goto(board + "/")
    await anon.get_by_test_id("user").filter(has_text="anonymous").wait_for()
    await anon.get_by_test_id("note").fill("left by a visitor")
    await _stored(anon, "note", "left by a visitor")
    await anon.reload()
    await expect(anon.get_by_test_id("note")).to_have_value("left by a visitor")
    await anon.screenshot(path=screenshot_path("spark-board.png"))

    # A cross-site page posting with the signed-in user's cookie changes nothing.
    evil = f"http://evil.localhost:{server.port}"
    await ada.route(
        evil + "/**", lambda route: route.fulfill(body="<!doctype html><p>hi</p>", content_type="text/html")
    )
    attacker = await ada.new_page()
    await attacker.goto(evil + "/")
    status = await attacker.evaluate(
        """url => fetch(url, {method: "POST", credentials: "include", mode: "no-cors",
                 headers: {"Content-Type": "text/plain"}, body: JSON.stringify("pwned")})
                 .then(r => r.type, e => "blocked: " + e)""",
        notes + "/_spark/kv/note",
    )
    # The request is sent (no preflight for a "simple" POST); Bastion's CORP header then hides the answer.
    assert status in ("opaque", "blocked: TypeError: Failed to fetch"), status
    await page.reload()
    await expect(page.get_by_test_id("note")).to_have_value(typed)

    # Nothing on the way failed: no refused write, no CSRF failure, no rate limit, no CSP violation.
    assert watch.failures == []
    assert watch.problems == []
    log = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    requests = [e for e in log if e.get("event") == "request"]
    assert requests and not [e for e in requests if e.get("status") == 429]
    assert any(e.get("event") == "session renewed" for e in log)  # the 30 s access token was renewed, unseen
    await ada.close()
    await visitor.close()
