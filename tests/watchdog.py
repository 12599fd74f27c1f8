"""The event-loop watchdog of the async tests: times every callback run on the test's
loop and reports the ones that held it too long (a blocking call). The fixture that puts
it on every async test is ``event_loop_watchdog`` in tests/conftest.py."""

from __future__ import annotations

import asyncio
import os
import resource
import threading
import time
from pathlib import Path

# A callback of the service that holds the event loop this long is a blocking call. Not
# tighter: on 2 cores a worker thread running Pillow can hold the GIL for ~100 ms.
SLOW_CALLBACK_S = 0.25
# Steps of the test's own coroutines (making sample media, hashing expected bytes, a load
# generator's clients) are the test's business, not the service's.
_TESTS = f"{Path(__file__).parent}{os.sep}"
_TEST_CODE = (
    "coro=<test_",
    "_async_fixture_wrapper",
    f"running at {_TESTS}",
    f"defined at {_TESTS}",
)


def _waited_to_run_s() -> float | None:
    """Seconds this thread has spent runnable but waiting for a CPU (the kernel's
    schedstat), or None where the kernel does not keep it."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class Watchdog:
    """Times every callback run on one thread's event loop. A callback is blocking when it
    held the loop SLOW_CALLBACK_S or more, not counting the time the thread waited for a
    CPU while runnable (the kernel's schedstat: on 2 cores shared with the JVMs of the
    cluster, that time is the scheduler's, not the code's) nor the garbage collector's. A
    blocking call (a sleep, a socket or file read, a lock) waits off the run queue and is
    caught; so is a callback that computes for too long. Where the kernel keeps no
    schedstat, a callback preempted meanwhile (an involuntary context switch) that used
    less than SLOW_CALLBACK_S of CPU is let through instead."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.seen: list[str] = []
        self.collecting = 0.0  # the garbage collector's time on this thread: not the code's
        self._gc_started: float | None = None

    def gc_phase(self, phase: str, info: dict) -> None:
        if threading.get_ident() != self.thread:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            self.collecting += time.perf_counter() - self._gc_started
            self._gc_started = None

    def run(self, handle: asyncio.Handle, run) -> None:
        if threading.get_ident() != self.thread:
            return run(handle)
        wall, cpu, collecting = time.perf_counter(), time.thread_time(), self.collecting
        queued = _waited_to_run_s()
        switches = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw
        try:
            return run(handle)
        finally:
            collected = self.collecting - collecting  # a full collection can take 0.5 s
            wall, cpu = time.perf_counter() - wall - collected, time.thread_time() - cpu - collected
            if wall >= SLOW_CALLBACK_S:
                now_queued = _waited_to_run_s()
                if queued is not None and now_queued is not None:
                    blocking = wall - (now_queued - queued) >= SLOW_CALLBACK_S
                else:
                    preempted = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw > switches
                    blocking = cpu >= SLOW_CALLBACK_S or not preempted
                described = asyncio.base_events._format_handle(handle)  # as asyncio's own warning
                if blocking and not any(t in described for t in _TEST_CODE):
                    self.seen.append(f"{described} took {wall:.3f} s ({cpu:.3f} s of CPU)")
