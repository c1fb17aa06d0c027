"""Access tokens: only HS256 tokens signed with a configured key, unexpired and well-formed, are accepted."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bastion.identity import tokens
from tests.conftest import serve
from tests.identity.conftest import SQLITE_ONLY, bearer, register, service_of


def _claims(session: dict[str, Any], **changes: Any) -> dict[str, Any]:
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    claims.update(changes)
    return claims


def _header(session: dict[str, Any]) -> dict[str, Any]:
    """The real token's kid and typ (the algorithm is left to each forgery)."""
    header = jwt.get_unverified_header(session["access_token"])
    return {"kid": header["kid"], "typ": header["typ"]}


@pytest.fixture
async def signed_in(identity_app):
    """A running app and a registered user's token session: yields (client, app, session)."""
    app = identity_app()
    async with serve(app) as http:
        yield http, app, await register(http)


async def _refused(http, token: str) -> None:
    response = await http.get("/t/id/whoami", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "INVALID_TOKEN"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_expired_token_is_rejected(signed_in):
    """A correctly signed token past its exp is refused."""
    http, app, session = signed_in
    past = time.time() - 3600
    token, _ = service_of(app).signer.issue(
        user_id=session["user"]["id"], session_id=_claims(session)["sid"], ttl=60, now=past
    )
    await _refused(http, token)


async def test_tampered_token_is_rejected(signed_in):
    """Changing a claim (another user's id) without the key breaks the signature."""
    http, _, session = signed_in
    head, _, signature = session["access_token"].split(".")
    payload = base64.urlsafe_b64encode(json.dumps(_claims(session, sub="someone-else")).encode()).rstrip(b"=")
    await _refused(http, f"{head}.{payload.decode()}.{signature}")


async def test_alg_none_token_is_rejected(signed_in):
    """An unsigned token (alg: none) with the right kid and typ is refused."""
    http, _, session = signed_in
    token = jwt.encode(_claims(session), key=None, algorithm="none", headers=_header(session))
    assert jwt.get_unverified_header(token)["alg"] == "none"
    await _refused(http, token)


async def test_token_signed_with_another_key_is_rejected(signed_in):
    """A token signed with a different 32-byte key (claiming our kid) is refused."""
    http, _, session = signed_in
    token = jwt.encode(_claims(session), os.urandom(32), algorithm="HS256", headers=_header(session))
    await _refused(http, token)


@SQLITE_ONLY
async def test_asymmetric_algorithm_is_rejected(signed_in):
    """Key confusion: an RS256 token (for a public key the attacker chose) is refused; only HS256 is allowed."""
    http, _, session = signed_in
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(session), private, algorithm="RS256", headers=_header(session))
    await _refused(http, token)


@SQLITE_ONLY
async def test_other_hmac_algorithm_is_rejected(signed_in):
    """Even with the right key, a token whose header says HS512 is refused: the algorithm is pinned."""
    http, app, session = signed_in
    key = service_of(app).signer._keys[_header(session)["kid"]]
    token = jwt.encode(_claims(session), key, algorithm="HS512", headers=_header(session))
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    await _refused(http, token)


@SQLITE_ONLY
async def test_token_for_another_audience_type_is_rejected(signed_in):
    """A token signed with our key but without the at+jwt type (another kind of JWT) is refused."""
    http, app, session = signed_in
    header = _header(session)
    key = service_of(app).signer._keys[header["kid"]]
    token = jwt.encode(_claims(session), key, algorithm="HS256", headers={"kid": header["kid"], "typ": "JWT"})
    await _refused(http, token)


def test_rotated_keys_still_verify_old_tokens():
    """With a new key first and the old one kept, tokens of the old key verify and new ones use the new key."""
    old_key, new_key = os.urandom(32), os.urandom(32)
    old_token, _ = tokens.Signer([old_key], issuer="bastion").issue(user_id="u", session_id="s", ttl=60)
    rotated = tokens.Signer([new_key, old_key], issuer="bastion")
    assert rotated.verify(old_token)["sub"] == "u"
    fresh, _ = rotated.issue(user_id="u", session_id="s", ttl=60)
    with pytest.raises(jwt.InvalidTokenError):
        tokens.Signer([old_key], issuer="bastion").verify(fresh)


def test_keys_derived_from_master_keys_differ_per_master():
    """Without a JWT secret, each encryption master key yields its own signing key, the active one first."""
    masters = {"a": os.urandom(32), "b": os.urandom(32)}
    derived = tokens.derive_keys(masters, "b")
    assert len(derived) == 2 and derived[0] != derived[1]
    assert derived[0] == tokens.derive_keys({"b": masters["b"]}, "b")[0]
    assert masters["b"] not in derived


def test_csrf_tokens_are_bound_to_their_session():
    """A CSRF token verifies for its session only."""
    signer = tokens.Signer([os.urandom(32)], issuer="bastion")
    token = signer.csrf_token("session-1")
    assert signer.csrf_valid("session-1", token)
    assert not signer.csrf_valid("session-2", token)
    assert not signer.csrf_valid("session-1", token + "x")
