"""The page's HTTP side: its own strict CSP, no inline code, pinned and cached assets, and a reveal page
that is the same document for every id (so fetching it tells and consumes nothing)."""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser

from tests.conftest import serve

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'"
)
FAST = {"argon2_time_cost": 1, "argon2_memory_kib": 8}


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside each <script> and <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in ("script", "style") else None

    def handle_data(self, data: str) -> None:
        if self._open and data.strip():
            self.inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


async def test_pages_send_their_own_strict_csp(make_app, make_settings):
    """/ and /s/{id} carry the page CSP (not the API's), no-referrer and noindex."""
    async with serve(make_app(make_settings(secrets=FAST))) as http:
        pages = [await http.get("/"), await http.get("/s/AAAAAAAAAAAAAAAAAAAAAA")]
    for page in pages:
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers.get_list("content-security-policy") == [CSP]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-robots-tag"] == "noindex, nofollow"
        assert page.headers["x-frame-options"] == "DENY"
    assert pages[1].headers["cache-control"] == "no-store"


async def test_pages_have_no_inline_scripts_styles_or_handlers(make_app, make_settings):
    """Every script and stylesheet is a file of ours with SRI; no inline code, style or on* attribute."""
    async with serve(make_app(make_settings(secrets=FAST))) as http:
        documents = [(await http.get("/")).text, (await http.get("/s/AAAAAAAAAAAAAAAAAAAAAA")).text]
    for document in documents:
        tags = parse(document)
        assert tags.inline == []
        assert not any(tag == "style" for tag, _ in tags.tags)
        for tag, attrs in tags.tags:
            assert "style" not in attrs and not any(name.startswith("on") for name in attrs), (tag, attrs)
            if tag == "script":
                assert attrs["src"].startswith("/assets/") and attrs["integrity"].startswith("sha384-")
            if tag == "link":
                assert attrs["href"].startswith("/assets/")


async def test_assets_match_their_integrity_and_are_cached_for_good(make_app, make_settings):
    """Each pinned asset's bytes hash to its SRI value; the versioned URL is immutable for a year."""
    async with serve(make_app(make_settings(secrets=FAST))) as http:
        tags = parse((await http.get("/")).text).tags
        pinned = [(a.get("src") or a.get("href"), a["integrity"]) for _, a in tags if a.get("integrity")]
        assert len(pinned) == 2
        for url, integrity in pinned:
            response = await http.get(url)
            digest = base64.b64encode(hashlib.sha384(response.content).digest()).decode()
            assert integrity == "sha384-" + digest
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        script = await http.get("/assets/app.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert script.headers["x-content-type-options"] == "nosniff"


async def test_an_unversioned_asset_revalidates_and_gets_304(make_app, make_settings):
    """Without the current version the asset must be revalidated; a matching ETag answers 304."""
    async with serve(make_app(make_settings(secrets=FAST))) as http:
        first = await http.get("/assets/app.css?v=old")
        again = await http.get("/assets/app.css", headers={"If-None-Match": first.headers["etag"]})
        missing = await http.get("/assets/secrets.py")
    assert first.headers["cache-control"] == "no-cache"
    assert again.status_code == 304 and again.content == b""
    assert missing.status_code == 404


async def test_the_reveal_page_is_the_same_document_for_every_id(make_app, make_settings):
    """A real id, an unknown one and a malformed one get identical bytes that name no id."""
    async with serve(make_app(make_settings(secrets=FAST))) as http:
        created = (await http.post("/api/secrets", json={"secret": "s"})).json()
        pages = [
            (await http.get(f"/s/{secret_id}")).content
            for secret_id in (created["id"], "AAAAAAAAAAAAAAAAAAAAAA", "nonsense")
        ]
    assert pages[0] == pages[1] == pages[2]
    assert created["id"].encode() not in pages[0]


async def test_preview_bots_fetching_the_link_consume_nothing(make_app, make_settings):
    """Slack, Teams and Safe Links style GETs of the page and the metadata leave the view in place."""
    agents = ["Slackbot-LinkExpanding 1.0", "Mozilla/5.0 (compatible; SkypeUriPreview)", "BingPreview/1.0b"]
    async with serve(make_app(make_settings(secrets=FAST))) as http:
        created = (await http.post("/api/secrets", json={"secret": "keep me"})).json()
        for agent in agents:
            assert (await http.get(f"/s/{created['id']}", headers={"User-Agent": agent})).status_code == 200
            assert (await http.get(f"/api/secrets/{created['id']}", headers={"User-Agent": agent})).status_code == 200
        revealed = await http.post(f"/api/secrets/{created['id']}/reveal")
    assert revealed.json()["secret"] == "keep me"


async def test_assets_are_not_rate_limited_but_pages_are(make_app, make_settings):
    """Static files sit outside the tiers; the pages count against general."""
    async with serve(make_app(make_settings(secrets=FAST, rate_limits={"general": "2/minute"}))) as http:
        assets = [(await http.get("/assets/app.js")).status_code for _ in range(5)]
        pages = [(await http.get("/")).status_code for _ in range(3)]
    assert assets == [200] * 5
    assert pages == [200, 200, 429]


async def test_the_form_offers_only_expiries_an_anonymous_creator_may_choose(make_app, make_settings):
    """The expiry choices follow the settings (min TTL, anonymous max, default selected)."""
    settings = make_settings(
        secrets={
            **FAST,
            "min_ttl_seconds": 3600,
            "max_ttl_anonymous_seconds": 7 * 86_400,
            "default_ttl_seconds": 86_400,
        }
    )
    async with serve(make_app(settings)) as http:
        tags = parse((await http.get("/")).text).tags
    options = [(a["value"], "selected" in a) for tag, a in tags if tag == "option"]
    assert options == [("3600", False), ("86400", True), ("604800", False)]


async def test_the_page_can_be_turned_off(make_app, make_settings):
    """With web.enabled=false there is no page, and the API still works."""
    async with serve(make_app(make_settings(secrets=FAST, web={"enabled": False}))) as http:
        page = await http.get("/")
        created = await http.post("/api/secrets", json={"secret": "s"})
    assert page.status_code == 404
    assert created.status_code == 201
