"""Password hashing (argon2id) on its own small pool of threads.

A hash costs tens of milliseconds of CPU and 64 MiB of memory. On the default executor,
a flood of log-ins queued every upload and media read behind it (12 clients looping
wrong passwords pushed uploads from 50 ms to over a minute). Here hashing has its own
``threads`` and at most ``queue`` waiting calls; past that a call is shed at once with
``Overloaded`` (503, Retry-After) instead of waiting. This module never touches a store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from instastore.errors import Overloaded
from instastore.limits import (
    PASSWORD_HASH_LANES,
    PASSWORD_HASH_MEMORY_KIB,
    PASSWORD_HASH_TIME_COST,
)

RETRY_AFTER_S = 1  # a few hashes' time: a shed caller retries when the queue has moved

_T = TypeVar("_T")


class PasswordHashing:
    """Hash (argon2id, ``time_cost`` passes over ``memory_kib``) and verify on ``threads``
    threads with at most ``queue`` calls waiting. A hash carries its parameters, so one
    made with other costs still verifies."""

    def __init__(
        self,
        threads: int,
        queue: int,
        time_cost: int = PASSWORD_HASH_TIME_COST,
        memory_kib: int = PASSWORD_HASH_MEMORY_KIB,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=PASSWORD_HASH_LANES
        )
        # SECURITY: log-in with an unknown name still verifies a hash of the same cost, so
        # timing does not tell which usernames exist.
        self.dummy_hash = self._hasher.hash("not a real password")
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="password-hash")
        self._capacity = threads + queue
        self._in_flight = 0

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, hashed: str, password: str) -> bool:
        return await self._run(self._verify, hashed, password)

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, fn: Callable[..., _T], *args: str) -> _T:
        if self._in_flight >= self._capacity:
            raise Overloaded(
                "too many sign-ups and log-ins at once; retry shortly", retry_after=RETRY_AFTER_S
            )
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
