"""Password hashing (argon2id) on small pools of threads of its own.

A hash costs tens of milliseconds of CPU and 64 MiB of memory. On the default executor,
a flood of log-ins queued every upload and media read behind it (12 clients looping
wrong passwords pushed uploads from 50 ms to over a minute). Here hashing has its own
threads, each pool with at most so many waiting calls; past that a call is shed at once
with ``Overloaded`` (503, Retry-After) instead of waiting.

Log-ins (and password changes) and sign-ups have a pool each: a flood of sign-ups fills
only its own queue, and a sign-up is also shed while any log-in waits for a thread, so
existing users keep logging in and sign-ups are shed first. This module never touches a
store.
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


class _Pool:
    """``threads`` threads with at most ``queue`` calls waiting for one; past that a call
    is shed with ``Overloaded`` saying there are too many ``what``."""

    def __init__(self, what: str, threads: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=what)
        self._what = what
        self._threads = threads
        self._capacity = threads + queue
        self._in_flight = 0

    @property
    def waiting(self) -> int:
        """Calls waiting for a thread."""
        return max(0, self._in_flight - self._threads)

    def shed(self) -> Overloaded:
        return Overloaded(f"too many {self._what} at once; retry shortly", RETRY_AFTER_S)

    async def run(self, fn: Callable[..., _T], *args: str) -> _T:
        if self._in_flight >= self._capacity:
            raise self.shed()
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class PasswordHashing:
    """Verify and hash existing users' passwords (argon2id, ``time_cost`` passes over
    ``memory_kib``) on ``threads`` threads with at most ``queue`` calls waiting; hash new
    accounts' on ``signup_threads`` threads with at most ``signup_queue`` waiting. A hash
    carries its parameters, so one made with other costs still verifies."""

    def __init__(
        self,
        threads: int,
        queue: int,
        time_cost: int = PASSWORD_HASH_TIME_COST,
        memory_kib: int = PASSWORD_HASH_MEMORY_KIB,
        signup_threads: int = 1,
        signup_queue: int = 0,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=PASSWORD_HASH_LANES
        )
        # SECURITY: log-in with an unknown name still verifies a hash of the same cost, so
        # timing does not tell which usernames exist.
        self.dummy_hash = self._hasher.hash("not a real password")
        self._logins = _Pool("log-ins", threads, queue)
        self._signups = _Pool("sign-ups", signup_threads, signup_queue)

    async def hash(self, password: str) -> str:
        """A hash of an existing user's new password, on the log-ins' pool."""
        return await self._logins.run(self._hasher.hash, password)

    async def hash_for_sign_up(self, password: str) -> str:
        """A new account's password hash, on the sign-ups' pool; shed while that pool is
        full or any log-in waits for a thread."""
        # SECURITY: a flood of sign-ups must never keep existing users from logging in.
        if self._logins.waiting:
            raise self._signups.shed()
        return await self._signups.run(self._hasher.hash, password)

    async def verify(self, hashed: str, password: str) -> bool:
        return await self._logins.run(self._verify, hashed, password)

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._logins.close()
        self._signups.close()
