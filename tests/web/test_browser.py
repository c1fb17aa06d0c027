"""The page in headless Chromium: create on /, a bot's visit consumes nothing, the click reveals once,
the key in the fragment never reaches the server, and the page works on a phone."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import expect

from tests.web.conftest import LiveServer, Traffic, screenshot_path

pytestmark = pytest.mark.slow
SECRET = "The vault code is 31-41-59 🔐"
BOT_AGENTS = (
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Microsoft Office Protocol Discovery; SafeLinks)",
)


async def create_on_the_page(
    page,
    server: LiveServer,
    *,
    secret: str = SECRET,
    in_browser: bool = True,
    passphrase: str = "",
    views: int = 1,
    shot: str | None = None,
) -> str:
    await page.goto(server.url + "/")
    if shot:
        await page.screenshot(path=screenshot_path(shot), full_page=True)
    await page.fill("#secret", secret)
    await page.fill("#views", str(views))
    if passphrase:
        await page.fill("#passphrase", passphrase)
    if not in_browser:
        await page.uncheck("#client-encrypt")
    await page.click("#create")
    await page.wait_for_selector("#result", state="visible")
    link: str = await page.input_value("#link")
    return link


async def views_left(server: LiveServer, secret_id: str) -> int:
    async with httpx.AsyncClient(base_url=server.url) as http:
        left: int = (await http.get(f"/api/secrets/{secret_id}")).json()["views_remaining"]
        return left


async def test_a_secret_made_on_the_page_survives_bots_and_reveals_once(live_server, new_page, traffic: Traffic):
    """Create on /, let bots (plain GETs and a JS-running scanner) open the link, then the person's click
    reveals it once and the next visit says it is gone."""
    creator = await new_page()
    link = await create_on_the_page(creator, live_server, shot="1-create.png")
    await creator.screenshot(path=screenshot_path("2-created.png"), full_page=True)
    secret_id = link.split("#")[0].rsplit("/", 1)[1]

    async with httpx.AsyncClient() as http:
        for agent in BOT_AGENTS:
            preview = await http.get(link.split("#")[0], headers={"User-Agent": agent})
            assert preview.status_code == 200 and SECRET not in preview.text
    scanner = await new_page()
    await scanner.goto(link)
    await scanner.wait_for_selector("#waiting", state="visible")
    assert await views_left(live_server, secret_id) == 1

    person = await new_page()
    await person.goto(link)
    await person.wait_for_selector("#waiting", state="visible")
    await person.screenshot(path=screenshot_path("3-waiting.png"), full_page=True)
    await person.click("#reveal")
    await person.wait_for_selector("#revealed", state="visible")
    assert await person.input_value("#secret-out") == SECRET
    assert "#" not in person.url  # the key is dropped from the address bar and the history
    await person.screenshot(path=screenshot_path("4-revealed.png"), full_page=True)

    again = await new_page()
    await again.goto(link)
    await again.wait_for_selector("#gone", state="visible")
    await again.screenshot(path=screenshot_path("5-gone.png"), full_page=True)
    assert new_page.problems == []
    assert all(url.startswith(live_server.url) for _, url, _, _ in traffic.requests)


async def test_the_key_in_the_fragment_never_reaches_the_server(live_server, new_page, traffic: Traffic):
    """With browser encryption, no request the pages make carries the key or the plaintext; the server
    gets ciphertext only."""
    creator = await new_page()
    link = await create_on_the_page(creator, live_server)
    key = link.split("#", 1)[1]
    person = await new_page()
    await person.goto(link)
    await person.click("#reveal")
    await person.wait_for_selector("#revealed", state="visible")
    assert await person.input_value("#secret-out") == SECRET

    assert len(key) == 43  # 256 bits, base64url
    assert traffic.containing(key) == []
    assert traffic.containing(SECRET) == []
    creates = [body for method, url, _, body in traffic.requests if method == "POST" and url.endswith("/api/secrets")]
    assert len(creates) == 1 and '"client_encrypted":true' in creates[0]
    reveals = [url for method, url, _, _ in traffic.requests if url.endswith("/reveal")]
    assert len(reveals) == 1


async def test_a_link_cut_before_its_key_consumes_nothing(live_server, new_page):
    """Opening a browser-encrypted link without its fragment explains the problem and uses up nothing."""
    creator = await new_page()
    link = await create_on_the_page(creator, live_server)
    person = await new_page()
    await person.goto(link.split("#")[0])
    await person.wait_for_selector("#gone", state="visible")
    assert "incomplete" in await person.text_content("#gone-reason")
    assert await views_left(live_server, link.split("#")[0].rsplit("/", 1)[1]) == 1


async def test_a_wrong_passphrase_on_the_page_uses_up_nothing(live_server, new_page):
    """A server-encrypted, passphrase-protected secret: a wrong try says so, the right one reveals."""
    creator = await new_page()
    link = await create_on_the_page(creator, live_server, in_browser=False, passphrase="sesame", views=2)
    assert "#" not in link
    person = await new_page()
    await person.goto(link)
    await person.wait_for_selector("#passphrase-field", state="visible")
    await person.fill("#passphrase", "wrong")
    await person.click("#reveal")
    # (an assertion, not wait_for_function: the page's CSP forbids the eval that one would need)
    await expect(person.locator("#reveal-status")).to_contain_text("4 attempts left")
    await person.screenshot(path=screenshot_path("6-wrong-passphrase.png"), full_page=True)
    await person.fill("#passphrase", "sesame")
    await person.click("#reveal")
    await person.wait_for_selector("#revealed", state="visible")
    assert await person.input_value("#secret-out") == SECRET
    assert "1 more time" in await person.text_content("#revealed-note")


async def test_copy_buttons_put_the_link_on_the_clipboard(live_server, new_page):
    """ "Copy link" copies the whole link, fragment included."""
    creator = await new_page(permissions=["clipboard-read", "clipboard-write"])
    link = await create_on_the_page(creator, live_server)
    await creator.click("button[data-copy='link']")
    assert await creator.evaluate("navigator.clipboard.readText()") == link
    assert await creator.text_content("button[data-copy='link']") == "Copied"


async def test_the_pages_fit_a_phone_screen(live_server, new_page):
    """At 375 px wide nothing scrolls sideways, on the form and on the revealed secret."""
    phone = {"viewport": {"width": 375, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
    creator = await new_page(**phone)
    link = await create_on_the_page(creator, live_server, secret="x" * 300, shot="7-phone-create.png")
    assert await creator.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    person = await new_page(**phone)
    await person.goto(link)
    await person.click("#reveal")
    await person.wait_for_selector("#revealed", state="visible")
    assert await person.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await person.screenshot(path=screenshot_path("8-phone-revealed.png"), full_page=True)
