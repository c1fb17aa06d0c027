"""The purge keeps the byte count exact without summing the table: reveals and burns release their
bytes, expiry gives them back in batches, and the walk covers what expired since the last run."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from bastion.secrets.backends.sql_purge import BATCH, RELEASED, SECRETS
from bastion.secrets.schemas import CreateSecretRequest
from tests.secrets.conftest import ALICE, BOB, Stack

BASE = "https://secrets.example"


async def _live_bytes(stack: Stack) -> int:
    assert stack.db is not None
    async with stack.db.engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.coalesce(func.sum(SECRETS.c.size_bytes), 0)).where(SECRETS.c.ciphertext.is_not(None))
            )
            or 0
        )


@pytest.mark.parametrize("backend_kind", ["sqlite", "postgres"])
async def test_usage_is_exact_after_reveals_burns_and_expiry(stack: Stack):
    """After a mix of creates, last views, burns and expiries, one purge leaves the count at the true sum of
    the ciphertexts still stored."""
    service = stack.with_settings(max_live_per_client=1000)
    made = []
    for n in range(12):
        request = CreateSecretRequest(secret="s" * (50 + n), ttl_seconds=300 + 600 * (n % 3), max_views=1 + n % 2)
        made.append(await service.create(request, ALICE, base_url=BASE))
    for created in made[:4]:
        await service.reveal(created.id, None, BOB)  # the 1-view ones (even n) drop their ciphertext
    await service.burn(made[5].id, made[5].delete_token, ALICE)
    stack.clock.advance(301)  # the 300 s ones (n % 3 == 0) expire
    await service.purge()
    true_sum = await _live_bytes(stack)
    assert 0 < true_sum < sum(50 + n for n in range(12)) * 2
    assert await stack.backend.stored_bytes() == true_sum


@pytest.mark.parametrize("backend_kind", ["sqlite", "postgres"])
async def test_purge_works_through_more_than_one_batch(stack: Stack):
    """Three batches' worth of expired secrets and of released bytes are all given back in one purge."""
    assert stack.db is not None
    now = stack.service.now_ms()
    rows = [_row(f"x{n:05d}", now - 1000 - n, 100) for n in range(2 * BATCH + 7)]
    rows += [_row(f"y{n:05d}", now + 3_600_000, 10) for n in range(5)]
    async with stack.db.begin() as conn:
        await conn.execute(insert(SECRETS), rows)
        await conn.execute(insert(RELEASED), [{"size_bytes": 1} for _ in range(BATCH + 3)])
        await conn.execute(
            SECRETS.metadata.tables["secrets_usage"].update().values(bytes=(2 * BATCH + 7) * 100 + 50 + BATCH + 3)
        )
    assert await stack.backend.purge(now, 86_400_000) == 2 * BATCH + 7
    assert await stack.backend.stored_bytes() == 50 == await _live_bytes(stack)
    async with stack.db.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(RELEASED)) == 0


@pytest.mark.parametrize("backend_kind", ["sqlite", "postgres"])
async def test_a_later_purge_still_finds_what_expired_after_the_last_one(stack: Stack):
    """Secrets expiring after a purge are dropped by the next one, however long the audit rows are kept."""
    assert stack.db is not None
    now = stack.service.now_ms()
    async with stack.db.begin() as conn:
        await conn.execute(insert(SECRETS), [_row("a", now - 10, 7), _row("b", now + 60_000, 5)])
        await conn.execute(SECRETS.metadata.tables["secrets_usage"].update().values(bytes=12))
    assert await stack.backend.purge(now, 86_400_000) == 1
    assert await stack.backend.stored_bytes() == 5
    assert await stack.backend.purge(now + 60_001, 86_400_000) == 1
    assert await stack.backend.stored_bytes() == 0


def _row(secret_id: str, expires_at_ms: int, size: int) -> dict[str, object]:
    return {
        "id": secret_id,
        "ciphertext": b"c" * size,
        "size_bytes": size,
        "client_encrypted": False,
        "passphrase_hash": None,
        "views_remaining": 1,
        "max_views": 1,
        "created_at_ms": expires_at_ms - 300_000,
        "expires_at_ms": expires_at_ms,
        "burned_at_ms": None,
        "owner_id": None,
        "quota_key": "ip:203.0.113.10",
        "delete_token_hash": b"\0" * 32,
    }
