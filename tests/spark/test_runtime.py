"""``/_spark/user`` and ``/_spark/loaded``, as the Spark client calls them."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.conftest import serve
from tests.spark.conftest import spark_principals


def _loads() -> float:
    return REGISTRY.get_sample_value("bastion_spark_page_load_seconds_count") or 0.0


async def test_user_is_null_when_signed_out(make_app):
    """spark.user() without a principal gets 200 null: the client caches the body as the user (``if (!user)``)."""
    async with serve(make_app(extra=(spark_principals,))) as http:
        response = await http.get("/_spark/user", headers={"Content-Type": "text/plain"})
    assert response.status_code == 200 and response.content == b"null"


async def test_user_has_exactly_the_clients_fields(make_app):
    """GET /_spark/user is {avatarUrl, email, id, isOwner, login} for the signed-in user."""
    async with serve(make_app(extra=(spark_principals,))) as http:
        response = await http.get("/_spark/user", headers={"Authorization": "Bearer user-ada"})
    assert response.status_code == 200
    assert response.json() == {
        "avatarUrl": "https://example.com/ada.png",
        "email": "ada@example.com",
        "id": "ada",
        "isOwner": False,
        "login": "ada",
    }


async def test_owner_is_owner(make_app):
    """isOwner is true for a user with the owner role."""
    async with serve(make_app(extra=(spark_principals,))) as http:
        response = await http.get("/_spark/user", headers={"Authorization": "Bearer owner-root"})
    assert response.json()["isOwner"] is True


async def test_api_key_answers_for_its_owner(make_app):
    """Called with an API key, /_spark/user describes the key's user."""
    async with serve(make_app(extra=(spark_principals,))) as http:
        response = await http.get("/_spark/user", headers={"Authorization": "Bearer key-alpha-7"})
    assert response.json() == {"avatarUrl": None, "email": "7@example.com", "id": "7", "isOwner": False, "login": "7"}


async def test_loaded_is_204_and_recorded(make_app):
    """POST /_spark/loaded {url, load_ms} answers 204 and the load time is observed."""
    before = _loads()
    async with serve(make_app(extra=(spark_principals,))) as http:
        response = await http.post("/_spark/loaded", json={"url": "https://app.example.com/?token=x", "load_ms": 812.5})
    assert response.status_code == 204
    assert _loads() == before + 1


async def test_loaded_takes_text_plain_too(make_app):
    """The same body sent as text/plain is accepted."""
    async with serve(make_app(extra=(spark_principals,))) as http:
        response = await http.post(
            "/_spark/loaded", content=b'{"url":"/","load_ms":3}', headers={"Content-Type": "text/plain"}
        )
    assert response.status_code == 204


async def test_loaded_rejects_a_malformed_body(make_app):
    """A body that is not the {url, load_ms} JSON object is 400, a negative load time too."""
    async with serve(make_app(extra=(spark_principals,))) as http:
        broken = await http.post("/_spark/loaded", content=b"{", headers={"Content-Type": "application/json"})
        negative = await http.post("/_spark/loaded", json={"url": "/", "load_ms": -1})
    assert broken.status_code == 400 and negative.status_code == 400


async def test_loaded_is_rate_limited(make_app):
    """/_spark/loaded is limited like other general routes (here 2 a minute)."""
    async with serve(make_app(extra=(spark_principals,), rate_limits={"general": "2/minute"})) as http:
        statuses = [(await http.post("/_spark/loaded", json={"url": "/", "load_ms": 1})).status_code for _ in range(3)]
    assert statuses == [204, 204, 429]
