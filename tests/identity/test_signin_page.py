"""The sign-in page: its form, its providers (GitHub first), a `next` that can only stay on this host, and
a policy that allows only its own files."""

from __future__ import annotations

import re

from tests.conftest import serve
from tests.identity.conftest import SQLITE_ONLY

PROVIDER = {
    "client_id": "cid",
    "client_secret": "secret",
    "authorize_url": "https://idp.example/authorize",
    "token_url": "https://idp.example/token",
    "userinfo_url": "https://idp.example/user",
}


@SQLITE_ONLY
async def test_the_page_has_the_form_and_providers_github_first(identity_app):
    providers = {"zitadel": PROVIDER, "github": {"client_id": "gh", "client_secret": "s", "preset": "github"}}
    async with serve(identity_app(identity={"oauth_providers": providers})) as http:
        page = await http.get("/auth/signin", params={"next": "/notes/7?x=1"})
        script = re.search(r'src="(/auth/assets/signin\.js\?v=\w+)"', page.text)
        asset = await http.get(script.group(1)) if script else None
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-next="/notes/7?x=1"' in page.text
    links = re.findall(r'href="(/auth/login/[^"]+)"', page.text)
    assert links == ["/auth/login/github?next=%2Fnotes%2F7%3Fx%3D1", "/auth/login/zitadel?next=%2Fnotes%2F7%3Fx%3D1"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert asset is not None and asset.status_code == 200 and b"/auth/login" in asset.content


@SQLITE_ONLY
async def test_next_stays_on_this_host(identity_app):
    """Another host, a scheme-relative URL or markup in `next` gives the default landing path instead."""
    async with serve(identity_app()) as http:
        pages = [
            await http.get("/auth/signin", params={"next": target})
            for target in ("https://evil.example/", "//evil.example", '/"><script>alert(1)</script>')
        ]
    assert 'data-next="/"' in pages[0].text and 'data-next="/"' in pages[1].text
    assert "<script>alert" not in pages[2].text and "&lt;script&gt;" in pages[2].text


@SQLITE_ONLY
async def test_the_page_is_not_limited_by_the_auth_tier(identity_app):
    """Loading the page many times never spends the (strict) sign-in attempt tier."""
    async with serve(identity_app(rate_limits={"auth": "2/minute", "general": "1000/minute"})) as http:
        statuses = {(await http.get("/auth/signin")).status_code for _ in range(5)}
    assert statuses == {200}
