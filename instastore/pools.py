"""Threads of their own, with a short queue, for work that holds much CPU or memory.

Work on a ``ShedPool`` runs on its ``threads`` with at most ``queue`` calls waiting; past
that a call is shed at once with ``Overloaded`` (503, Retry-After) instead of waiting, so
the work in flight, and the memory it holds, stays bounded whatever the number of
requests. Uploads decode media on one (instastore.uploads). This module never touches a
store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from instastore.errors import Overloaded

_T = TypeVar("_T")


class ShedPool:
    """``threads`` threads named ``name``, ``queue`` calls waiting; past them a call
    raises ``Overloaded(busy, retry_after)``."""

    def __init__(self, name: str, threads: int, queue: int, busy: str, retry_after: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._capacity = threads + queue
        self._busy = busy
        self._retry_after = retry_after
        self.in_flight = 0  # running and waiting calls

    def start(self, fn: Callable[..., _T], *args: Any, shed: bool = True) -> asyncio.Future[_T]:
        """``fn(*args)`` handed to a thread of the pool; its future. ``Overloaded`` at once,
        before anything starts, when ``shed`` and the pool is full; ``shed=False``: queued
        whatever the queue, for work that must finish (it still counts against the
        others)."""
        if shed and self.in_flight >= self._capacity:
            raise Overloaded(self._busy, retry_after=self._retry_after)
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        self.in_flight += 1
        future.add_done_callback(self._ended)
        return future

    async def run(self, fn: Callable[..., _T], *args: Any, shed: bool = True) -> _T:
        """``fn(*args)`` on a thread of the pool (see ``start``)."""
        return await self.start(fn, *args, shed=shed)

    def _ended(self, _: asyncio.Future[Any]) -> None:
        self.in_flight -= 1  # running and waiting calls

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
