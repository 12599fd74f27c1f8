"""Work a process does after it answered: one task per key at a time.

``SingleFlight.start(key, work)`` runs ``work()`` in a task of its own unless a task of
that key is running already. What a second start while one runs means is the caller's
choice: ``rerun=True`` runs the work once more after the current run (the fan-out of a
poster who posted again mid-run must see the new photo), else the start is dropped (a
cache refresh already under way reads what a second one would). A run's error goes to
``on_error`` and ends that key's runs; the next start begins afresh. Nothing here
survives its process: what must be finished after a kill -9 is written down first (the
fan-out queue, the inbox backfills) and found again by a sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any


class SingleFlight:
    def __init__(self, on_error: Callable[[Hashable, Exception], None]) -> None:
        self._on_error = on_error
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._again: set[Hashable] = set()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._running

    def start(
        self,
        key: Hashable,
        work: Callable[[], Coroutine[Any, Any, Any]],
        *,
        rerun: bool = False,
    ) -> None:
        if key in self._running:
            if rerun:
                self._again.add(key)
            return

        async def run() -> None:
            try:
                while True:
                    self._again.discard(key)
                    try:
                        await work()
                    except Exception as exc:
                        self._on_error(key, exc)
                        return
                    if key not in self._again:
                        return
            finally:
                self._again.discard(key)
                self._running.pop(key, None)

        self._running[key] = asyncio.get_running_loop().create_task(run())

    async def drain(self) -> None:
        """Wait for every run under way, and the reruns they owe (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    def cancel(self) -> None:
        for task in self._running.values():
            task.cancel()
