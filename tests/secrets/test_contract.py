"""The secrets backend contract, run through the service against SQLite, PostgreSQL and Redis alike."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bastion.core.errors import ValidationFailed
from bastion.secrets.errors import (
    LiveLimitReached,
    PassphraseInvalid,
    PassphraseRequired,
    SecretLocked,
    SecretNotFound,
    StorageFull,
)
from bastion.secrets.schemas import CreateSecretRequest
from bastion.secrets.service import Caller
from tests.secrets.conftest import ALICE, BOB, Stack

BASE = "https://secrets.example"


async def create(stack: Stack, secret: str = "hunter2", caller: Caller = ALICE, **fields: Any) -> tuple[str, str]:
    created = await stack.service.create(
        CreateSecretRequest(secret=secret, **fields),
        caller,
        base_url=BASE,
    )
    return created.id, created.delete_token


async def outcomes(stack: Stack, secret_id: str, attempts: int, passphrase: str | None = None) -> list[Any]:
    callers = [Caller(client=f"192.0.2.{i % 250}", rate_key=f"ip:192.0.2.{i % 250}") for i in range(attempts)]
    return await asyncio.gather(
        *[stack.service.reveal(secret_id, passphrase, c) for c in callers], return_exceptions=True
    )


async def test_a_secret_is_revealed_with_its_exact_plaintext(stack: Stack):
    """The plaintext comes back byte for byte, control characters and all."""
    text = "pa$$ word\n\ttab \u202e émoji 🔑 \x00"
    secret_id, _ = await create(stack, text)
    revealed = await stack.service.reveal(secret_id, None, BOB)
    assert revealed.secret == text
    assert revealed.views_remaining == 0


async def test_200_concurrent_reveals_of_a_one_view_secret_succeed_exactly_once(stack: Stack):
    """Of 200 reveals racing for a 1-view secret exactly one gets it; the rest get the 404."""
    secret_id, _ = await create(stack, "only once")
    results = await outcomes(stack, secret_id, 200)
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1 and wins[0].secret == "only once"
    assert all(isinstance(r, SecretNotFound) for r in results if isinstance(r, BaseException))


async def test_max_views_n_gives_exactly_n_successes(stack: Stack):
    """A 7-view secret serves exactly 7 of 60 concurrent reveals, counting down to 0."""
    secret_id, _ = await create(stack, "seven", max_views=7)
    results = await outcomes(stack, secret_id, 60)
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 7
    assert sorted(w.views_remaining for w in wins) == [0, 1, 2, 3, 4, 5, 6]


async def test_metadata_reads_never_consume_a_view(stack: Stack):
    """Any number of metadata reads, concurrent or not, leave the views untouched."""
    secret_id, _ = await create(stack, "preview me", max_views=2)
    reads = await asyncio.gather(*[stack.service.metadata(secret_id) for _ in range(50)])
    for _ in range(5):
        reads.append(await stack.service.metadata(secret_id))
    assert {m.views_remaining for m in reads} == {2}
    assert (await stack.service.reveal(secret_id, None, BOB)).views_remaining == 1


async def test_expiry_is_honoured_to_the_second(stack: Stack):
    """A secret is readable 1 ms before its expiry and gone at it, for metadata and reveal alike."""
    secret_id, _ = await create(stack, "brief", ttl_seconds=300, max_views=2)
    stack.clock.advance(300 - 0.001)
    assert (await stack.service.metadata(secret_id)).views_remaining == 2
    assert (await stack.service.reveal(secret_id, None, BOB)).secret == "brief"
    stack.clock.advance(0.001)
    with pytest.raises(SecretNotFound):
        await stack.service.metadata(secret_id)
    with pytest.raises(SecretNotFound):
        await stack.service.reveal(secret_id, None, BOB)


async def test_unknown_expired_viewed_and_burned_ids_are_the_same_not_found(stack: Stack):
    """Every kind of missing secret raises the one SecretNotFound with the one detail."""
    viewed, _ = await create(stack)
    await stack.service.reveal(viewed, None, BOB)
    burned, token = await create(stack)
    await stack.service.burn(burned, token, ALICE)
    expired, _ = await create(stack, ttl_seconds=300)
    stack.clock.advance(301)
    details = set()
    for secret_id in (viewed, burned, expired, "A" * 22, "not-even-an-id"):
        for call in (stack.service.metadata(secret_id), stack.service.reveal(secret_id, None, BOB)):
            with pytest.raises(SecretNotFound) as caught:
                await call
            details.add(caught.value.detail)
    assert len(details) == 1


async def test_a_wrong_passphrase_consumes_nothing(stack: Stack):
    """Wrong or missing passphrases leave the single view in place for the right one."""
    secret_id, _ = await create(stack, "guarded", passphrase="correct horse")
    with pytest.raises(PassphraseRequired):
        await stack.service.reveal(secret_id, None, BOB)
    with pytest.raises(PassphraseInvalid) as wrong:
        await stack.service.reveal(secret_id, "battery staple", BOB)
    assert wrong.value.extra["attempts_left"] == 4
    assert (await stack.service.metadata(secret_id)).views_remaining == 1
    assert (await stack.service.reveal(secret_id, "correct horse", BOB)).secret == "guarded"


async def test_five_wrong_passphrases_lock_the_secret_for_that_client_only(stack: Stack):
    """After 5 wrong tries the client is locked out of that secret for 30 minutes, even with the right
    passphrase; another client is not, and nothing was consumed."""
    secret_id, _ = await create(stack, "guarded", passphrase="right")
    for left in (4, 3, 2, 1, 0):
        with pytest.raises(PassphraseInvalid) as wrong:
            await stack.service.reveal(secret_id, "wrong", BOB)
        assert wrong.value.extra["attempts_left"] == left
    with pytest.raises(SecretLocked) as locked:
        await stack.service.reveal(secret_id, "right", BOB)
    assert 1790 <= int(locked.value.headers["Retry-After"]) <= 1800
    assert (await stack.service.reveal(secret_id, "right", ALICE)).secret == "guarded"


async def test_the_delete_token_burns_a_secret_and_a_wrong_one_does_not(stack: Stack):
    """A wrong delete token is the plain 404 and burns nothing; the right one burns the secret."""
    secret_id, token = await create(stack, max_views=3)
    with pytest.raises(SecretNotFound):
        await stack.service.burn(secret_id, token[:-1] + ("A" if token[-1] != "A" else "B"), BOB)
    assert (await stack.service.metadata(secret_id)).views_remaining == 3
    await stack.service.burn(secret_id, token, BOB)
    with pytest.raises(SecretNotFound):
        await stack.service.reveal(secret_id, None, BOB)
    with pytest.raises(SecretNotFound):
        await stack.service.burn(secret_id, token, BOB)


async def test_the_owner_burns_without_a_token_and_nobody_else_can(stack: Stack):
    """A signed-in creator burns their secret by identity; another user cannot."""
    owner = Caller(client="203.0.113.10", rate_key="user:u1", owner_id="u1")
    stranger = Caller(client="203.0.113.10", rate_key="user:u2", owner_id="u2")
    secret_id, _ = await create(stack, caller=owner)
    with pytest.raises(SecretNotFound):
        await stack.service.burn(secret_id, None, stranger)
    await stack.service.burn(secret_id, None, owner)
    assert (await stack.service.audit(secret_id, None, owner)).state == "burned"


async def test_the_audit_trail_records_created_viewed_and_burned(stack: Stack):
    """The creator sees every event in order, with coarse client networks, never full addresses."""
    secret_id, token = await create(stack, max_views=3)
    stack.clock.advance(10)
    await stack.service.reveal(secret_id, None, BOB)
    stack.clock.advance(10)
    await stack.service.burn(secret_id, token, ALICE)
    audit = await stack.service.audit(secret_id, token, BOB)
    assert audit.state == "burned" and audit.views_remaining == 0
    assert [(e.event, e.client) for e in audit.events] == [
        ("created", "203.0.113.0/24"),
        ("viewed", "198.51.100.0/24"),
        ("burned", "203.0.113.0/24"),
    ]
    assert audit.events[1].at.timestamp() == pytest.approx(stack.clock.now - 10)


async def test_the_audit_trail_shows_expiry_and_the_last_view(stack: Stack):
    """An unread secret ends "expired" at its expiry time; a fully read one ends "viewed"."""
    lapsed, lapsed_token = await create(stack, ttl_seconds=300)
    read, read_token = await create(stack)
    await stack.service.reveal(read, None, BOB)
    stack.clock.advance(400)
    expired = await stack.service.audit(lapsed, lapsed_token, ALICE)
    assert expired.state == "expired"
    assert [e.event for e in expired.events] == ["created", "expired"]
    assert expired.events[-1].at == expired.expires_at
    assert (await stack.service.audit(read, read_token, ALICE)).state == "viewed"


async def test_the_audit_trail_needs_the_token_or_the_owner(stack: Stack):
    """Without the token (or as another user) the audit trail is the plain 404."""
    secret_id, _ = await create(stack)
    with pytest.raises(SecretNotFound):
        await stack.service.audit(secret_id, None, BOB)
    with pytest.raises(SecretNotFound):
        await stack.service.audit(secret_id, "x" * 32, BOB)


async def test_signed_in_creators_list_only_their_live_secrets(stack: Stack):
    """The list holds the owner's live secrets, newest first, not viewed, burned, expired or others'."""
    owner = Caller(client="203.0.113.10", rate_key="user:u1", owner_id="u1")
    old, _ = await create(stack, caller=owner, max_views=2)
    stack.clock.advance(1)
    viewed, _ = await create(stack, caller=owner)
    await stack.service.reveal(viewed, None, BOB)
    burned, token = await create(stack, caller=owner)
    await stack.service.burn(burned, token, owner)
    short, _ = await create(stack, caller=owner, ttl_seconds=300)
    await create(stack, caller=ALICE)
    stack.clock.advance(1)
    new, _ = await create(stack, caller=owner)
    stack.clock.advance(299)
    assert [s.id for s in await stack.service.owned("u1")] == [new, old]
    assert short not in [s.id for s in await stack.service.owned("u1")]


async def test_the_live_secret_cap_holds_per_anonymous_client(stack: Stack):
    """An anonymous client gets at most max_live_per_client live secrets; a reveal frees a slot, and
    another client has its own allowance."""
    service = stack.with_settings(max_live_per_client=3)
    ids = [(await service.create(CreateSecretRequest(secret="s"), ALICE, base_url=BASE)).id for _ in range(3)]
    with pytest.raises(LiveLimitReached):
        await service.create(CreateSecretRequest(secret="s"), ALICE, base_url=BASE)
    await service.create(CreateSecretRequest(secret="s"), BOB, base_url=BASE)
    await service.reveal(ids[0], None, BOB)
    await service.create(CreateSecretRequest(secret="s"), ALICE, base_url=BASE)


async def test_an_ipv6_client_is_capped_by_its_64(stack: Stack):
    """Rotating addresses inside one IPv6 /64 does not buy more live secrets."""
    service = stack.with_settings(max_live_per_client=2)
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2"):
        await service.create(CreateSecretRequest(secret="s"), Caller(client=host, rate_key="ip:" + host), base_url=BASE)
    with pytest.raises(LiveLimitReached):
        await service.create(
            CreateSecretRequest(secret="s"), Caller(client="2001:db8:1:2::3", rate_key="x"), base_url=BASE
        )


async def test_concurrent_creates_cannot_pass_the_live_cap(stack: Stack):
    """Forty creates racing against a cap of 5 store exactly 5."""
    service = stack.with_settings(max_live_per_client=5)
    results = await asyncio.gather(
        *[service.create(CreateSecretRequest(secret="s"), ALICE, base_url=BASE) for _ in range(40)],
        return_exceptions=True,
    )
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 5
    assert all(isinstance(r, LiveLimitReached) for r in results if isinstance(r, BaseException))


async def test_the_total_bytes_cap_refuses_what_does_not_fit(stack: Stack):
    """Once the stored ciphertext would pass max_total_bytes, creates get StorageFull; bytes come back
    when secrets expire and are purged."""
    service = stack.with_settings(max_total_bytes=3000, max_secret_bytes=1000)
    for _ in range(2):
        await service.create(CreateSecretRequest(secret="x" * 1000, ttl_seconds=300), ALICE, base_url=BASE)
    with pytest.raises(StorageFull):
        await service.create(CreateSecretRequest(secret="x" * 1000), BOB, base_url=BASE)
    assert 2000 < await stack.backend.stored_bytes() <= 3000
    stack.clock.advance(301)
    await service.purge()
    assert await stack.backend.stored_bytes() == 0
    await service.create(CreateSecretRequest(secret="x" * 1000), BOB, base_url=BASE)


async def test_concurrent_large_creates_never_pass_the_byte_cap(stack: Stack):
    """Thirty creates racing for room for ten store at most ten's worth of bytes."""
    service = stack.with_settings(max_total_bytes=10 * 1100, max_secret_bytes=1000, max_live_per_client=1000)
    results = await asyncio.gather(
        *[service.create(CreateSecretRequest(secret="y" * 1000), ALICE, base_url=BASE) for _ in range(30)],
        return_exceptions=True,
    )
    stored = [r for r in results if not isinstance(r, BaseException)]
    assert 1 <= len(stored) <= 10
    assert await stack.backend.stored_bytes() <= 10 * 1100
    assert all(isinstance(r, StorageFull) for r in results if isinstance(r, BaseException))


async def test_purge_forgets_secrets_after_the_audit_retention(stack: Stack):
    """After expiry plus the retention, even the receipt is gone."""
    service = stack.with_settings(audit_retention_seconds=3600)
    created = await service.create(CreateSecretRequest(secret="s", ttl_seconds=300), ALICE, base_url=BASE)
    if stack.kind == "redis":  # Redis forgets by its own clock: the receipt and events carry the deadline
        deadline = round(created.expires_at.timestamp() * 1000) + 3_600_000
        for kind in ("r", "l"):
            key = f"{stack.prefix}{{secrets}}:{kind}:{created.id}"
            assert await stack.redis.execute_command("PEXPIRETIME", key) == deadline
        return
    stack.clock.advance(300 + 3600 + 1)
    await service.purge()
    with pytest.raises(SecretNotFound):
        await service.audit(created.id, created.delete_token, ALICE)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ttl_seconds": 299}, "ttl_seconds"),
        ({"ttl_seconds": 7 * 86_400 + 1}, "ttl_seconds"),
        ({"max_views": 0}, "max_views"),
        ({"max_views": 101}, "max_views"),
        ({"secret": "x" * 65_537}, "secret"),
        ({"secret": "not base64!", "client_encrypted": True}, "secret"),
        ({"secret": "AAAA", "client_encrypted": True}, "secret"),
    ],
)
async def test_out_of_bounds_creates_are_refused_with_the_field(stack: Stack, fields: dict[str, object], field: str):
    """TTL, views, size and ciphertext shape are checked, and the error names the field."""
    body = {"secret": "s", **fields}
    with pytest.raises(ValidationFailed) as refused:
        await stack.service.create(CreateSecretRequest(**body), ALICE, base_url=BASE)  # type: ignore[arg-type]
    assert [e["field"] for e in refused.value.extra["errors"]] == [field]


async def test_signed_in_creators_may_keep_secrets_longer(stack: Stack):
    """The 30-day bound is for signed-in creators; anonymous ones stop at 7 days."""
    owner = Caller(client="203.0.113.10", rate_key="user:u1", owner_id="u1")
    await create(stack, caller=owner, ttl_seconds=30 * 86_400)
    with pytest.raises(ValidationFailed):
        await create(stack, caller=owner, ttl_seconds=30 * 86_400 + 1)


async def stored_ciphertext(stack: Stack, secret_id: str) -> bytes | None:
    """What the backend still holds of a secret's ciphertext, read underneath the service."""
    if stack.kind == "redis":
        found: bytes | None = await stack.redis.hget(f"{stack.prefix}{{secrets}}:s:{secret_id}", "ct")
        return found
    from sqlalchemy import text

    assert stack.db is not None
    async with stack.db.engine.connect() as conn:
        stored: bytes | None = await conn.scalar(
            text("SELECT ciphertext FROM secrets_secret WHERE id = :id"), {"id": secret_id}
        )
        return stored


async def test_the_last_view_deletes_the_ciphertext(stack: Stack):
    """The ciphertext stays while views remain and is gone from storage as the last view is taken."""
    secret_id, _ = await create(stack, "two views", max_views=2)
    await stack.service.reveal(secret_id, None, BOB)
    assert await stored_ciphertext(stack, secret_id)
    await stack.service.reveal(secret_id, None, BOB)
    assert await stored_ciphertext(stack, secret_id) is None


async def test_burning_deletes_the_ciphertext(stack: Stack):
    """A burned secret's ciphertext is gone from storage at once."""
    secret_id, token = await create(stack, max_views=5)
    await stack.service.burn(secret_id, token, ALICE)
    assert await stored_ciphertext(stack, secret_id) is None
