"""Hosted apps: a built app's files on its own host (client routes, caching, CSP), no path outside dist/,
unregistered hosts unchanged, private apps behind the sign-in page, and one KV namespace per app host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.core.errors import Conflict, ValidationFailed
from bastion.spark.apps import AppRegistry
from tests.conftest import serve
from tests.spark.test_kv import TEXT, USER, get, put

INDEX = b'<!doctype html><script type="module" src="/assets/index-Ab12.js"></script><div id="root"></div>'


def build_dist(root: Path, name: str = "dist") -> Path:
    """A Vite-shaped build: index.html, hashed assets, a public file; plus a secret beside it and a symlink
    out of it."""
    dist = root / name
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_bytes(INDEX)
    (dist / "assets" / "index-Ab12.js").write_bytes(b"console.log('app')")
    (dist / "assets" / "index-Cd34.css").write_bytes(b"body{}")
    (dist / "favicon.svg").write_bytes(b"<svg/>")
    (dist / ".env").write_bytes(b"SECRET=1")
    (root / "secret.txt").write_bytes(b"top secret")
    os.symlink(root / "secret.txt", dist / "escape.txt")
    os.symlink(root, dist / "up")
    return dist


@pytest.fixture
def hosted(kv_app, tmp_path):
    dist = build_dist(tmp_path)
    apps = [
        {"name": "notes", "host": "notes.localhost", "dist": str(dist), "public": True},
        {"name": "todo", "host": "todo.localhost", "dist": str(dist), "public": True},
        {"name": "vault", "host": "vault.localhost", "dist": str(dist)},
    ]

    def build(**overrides):
        return kv_app(
            spark={"apps": apps, **overrides.pop("spark", {})},
            allowed_hosts=["localhost", "*.localhost"],
            **overrides,
        )

    return build


async def test_files_client_routes_and_caching(hosted):
    """index.html (no-cache) at / and at client routes; hashed assets immutable; the app's CSP on each."""
    async with serve(hosted(), base_url="http://notes.localhost:8150") as http:
        root = await http.get("/")
        route = await http.get("/notes/42?tab=x")
        asset = await http.get("/assets/index-Ab12.js")
        favicon = await http.get("/favicon.svg")
        again = await http.get("/favicon.svg", headers={"If-None-Match": favicon.headers["etag"]})
        head = await http.head("/")
    assert root.status_code == 200 and root.content == INDEX
    assert root.headers["content-type"].startswith("text/html") and root.headers["cache-control"] == "no-cache"
    assert route.status_code == 200 and route.content == INDEX
    assert asset.status_code == 200 and asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in asset.headers["content-type"]
    assert favicon.headers["cache-control"] == "public, no-cache" and again.status_code == 304
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(INDEX))
    csp = root.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self'" in csp and "object-src 'none'" in csp
    assert "unsafe-eval" not in csp and "script-src 'self' 'unsafe-inline'" not in csp


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/escape.txt",
        "/up/secret.txt",
        "/.env",
        "/assets\\..\\..\\secret.txt",
        "/assets/missing-0000.js",
        "/missing.png",
    ],
)
async def test_no_path_leaves_dist(hosted, path):
    """Traversal (plain or encoded), symlinks out of dist/, dot-files and missing files: 404, never the file."""
    async with serve(hosted(), base_url="http://notes.localhost") as http:
        response = await http.get(path)
    assert response.status_code == 404, path
    assert b"top secret" not in response.content and b"SECRET" not in response.content


async def test_a_host_that_is_not_registered_is_unchanged(hosted):
    """On localhost Bastion answers as before (the secrets page at /, not the app)."""
    async with serve(hosted(), base_url="http://localhost") as http:
        page = await http.get("/")
        kv = await http.get("/_spark/kv", headers=TEXT)
    assert page.status_code == 200 and page.content != INDEX
    assert kv.status_code == 401  # not a public app's host: anonymous KV is refused as before


async def test_writes_to_files_are_refused(hosted):
    async with serve(hosted(), base_url="http://notes.localhost") as http:
        response = await http.post("/index.html", json={"x": 1})
    assert response.status_code == 405


async def test_each_app_host_has_its_own_kv_namespace(hosted):
    """The same user writes a key on two app hosts: each host sees only its own value."""
    app = hosted()
    async with serve(app, base_url="http://notes.localhost") as notes:
        await put(notes, "title", '"notes"')
        async with serve(app, base_url="http://todo.localhost") as todo:
            await put(todo, "title", '"todo"')
            from_todo = await get(todo, "title")
            keys_todo = await todo.get("/_spark/kv", headers={**USER, **TEXT})
        from_notes = await get(notes, "title")
        anonymous = await notes.get("/_spark/kv/title", headers=TEXT)
    assert from_notes.text == '"notes"' and from_todo.text == '"todo"'
    assert keys_todo.json() == ["title"]
    assert anonymous.text == '"notes"'  # a public app: anonymous visitors share the app's data


async def test_private_app_sends_signed_out_visitors_to_sign_in(hosted):
    """A private app redirects a signed-out visitor to the sign-in page (with the way back) before any file,
    and refuses its KV to them; a signed-in user gets the app."""
    async with serve(hosted(), base_url="http://vault.localhost") as http:
        page = await http.get("/notes/7?x=1")
        asset = await http.get("/assets/index-Ab12.js")
        kv = await http.get("/_spark/kv", headers=TEXT)
        user = await http.get("/_spark/user", headers=TEXT)
        signed_in = await http.get("/notes/7", headers=USER)
    assert page.status_code == 303 and page.headers["location"] == "/auth/signin?next=%2Fnotes%2F7%3Fx%3D1"
    assert asset.status_code == 303
    assert kv.status_code == 401
    assert user.status_code == 200 and user.json() is None
    assert signed_in.status_code == 200 and signed_in.content == INDEX
    assert signed_in.headers["cache-control"] == "no-cache"


async def test_apps_added_in_the_database_are_served(kv_app, tmp_path):
    """An app registered as ``bastion spark add`` does is served once the registry refreshes (its periodic job);
    a second app on the same host or name is refused."""
    dist = build_dist(tmp_path)
    app = kv_app(allowed_hosts=["localhost", "*.localhost"])
    async with serve(app, base_url="http://cli.localhost") as http:
        before = await http.get("/")
        registry = AppRegistry(app.platform.db, app.settings.spark)
        await registry.add("cli", host="CLI.localhost", dist=dist, public=True)
        with pytest.raises(Conflict):
            await registry.add("other", host="cli.localhost", dist=dist, public=True)
        served: AppRegistry = app.litestar.dependencies["spark_apps"].dependency()
        await served.refresh()
        after = await http.get("/")
    assert before.content != INDEX and after.content == INDEX


async def test_a_dist_without_index_html_is_refused(kv_app, tmp_path):
    app = kv_app()
    async with serve(app):
        with pytest.raises(ValidationFailed):
            await AppRegistry(app.platform.db, app.settings.spark).add(
                "empty", host="empty.localhost", dist=tmp_path, public=False
            )
