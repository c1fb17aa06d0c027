"""Password hashing with argon2id (argon2-cffi), off the event loop and bounded in concurrency: account
passwords (identity) and secret passphrases (secrets) share it.

    passwords = Passwords(time_cost=3, memory_kib=65_536, parallelism=1, max_concurrent=4)
    passwords = Passwords(..., gate=Bulkhead("argon2", max_concurrent=2, max_waiting=64))  # 503 when full
    stored = await passwords.hash("correct horse battery staple")
    ok = await passwords.verify(stored, "correct horse battery staple")
    ok = await passwords.verify(None, "guess")   # unknown account: same work, always False

Verifying against ``None`` checks the password against a dummy hash made with the same parameters, so a
login for an account that does not exist costs the same time as a wrong password for one that does.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import AbstractAsyncContextManager
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(
        self,
        *,
        time_cost: int,
        memory_kib: int,
        parallelism: int,
        max_concurrent: int = 1,
        gate: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, hash_len=32, salt_len=16, type=Type.ID
        )
        # Each hash holds ``memory_kib`` for its duration: a burst must queue, not exhaust memory or cores.
        # ``gate`` replaces the plain semaphore, e.g. with a Bulkhead that refuses when too many wait.
        self._gate: AbstractAsyncContextManager[Any] = gate or asyncio.Semaphore(max_concurrent)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._gate:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """True if ``password`` matches ``stored``; with ``stored=None`` the same work is done, then False."""
        target = stored if stored is not None else await self._dummy_hash()
        async with self._gate:
            ok = await asyncio.to_thread(self._check, target, password)
        return ok and stored is not None

    def needs_rehash(self, stored: str) -> bool:
        """The stored hash was made with other parameters than the configured ones."""
        return self._hasher.check_needs_rehash(stored)

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        return self._dummy
