"""The event-loop watchdog of the async tests: times every callback run on the test's
loop and reports the ones that held it too long (a blocking call). The fixture that puts
it on every async test is ``event_loop_watchdog`` in tests/conftest.py."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import threading
import time
import traceback
import weakref
from pathlib import Path

# A callback of the service that holds the event loop this long is a blocking call. Not
# tighter: on 2 cores a worker thread running Pillow can hold the GIL for ~100 ms.
SLOW_CALLBACK_S = 0.25
# ... when it computed (used SLOW_CALLBACK_S of CPU). One that mostly waited (a sleep, a
# lock, a read) is blocking from this long: on these 2 cores under CI's load (two
# clusters' JVMs writing, tests on other processes) the loop's thread was seen stalled
# 0.27-0.33 s in request handlers with 1 ms of CPU, no preemption and no other thread
# computing, waits the kernel does not account anywhere this can read (delay accounting
# is off: a page-in, a writeback, a new thread's first run). A blocking call of the
# service's (a store's round trip, a sleep before a retry) is still caught whenever it
# takes this long, and the report says where (``sample_stacks``).
SLOW_WAIT_S = 0.75
# CPU other threads of the process used during a slow callback that makes its wait theirs.
OTHER_THREADS_S = 0.05
# When a callback has held the loop this long, the sampler (``sample_stacks``) takes the
# loop thread's stack: where it was blocked goes with the report.
SAMPLE_AFTER_S = 0.15
SAMPLE_EVERY_S = 0.05
# Steps of the test's own coroutines (making sample media, hashing expected bytes, a load
# generator's clients) are the test's business, not the service's.
_TESTS = f"{Path(__file__).parent}{os.sep}"
_TEST_CODE = (
    "coro=<test_",
    "_async_fixture_wrapper",
    f"running at {_TESTS}",
    f"defined at {_TESTS}",
)


class Watchdog:
    """Times every callback run on one thread's event loop. A callback is blocking when it
    computed SLOW_CALLBACK_S or more, or held the loop SLOW_WAIT_S or more, unless the
    kernel preempted a thread of the process meanwhile (an involuntary context switch)
    and the callback used less than SLOW_CALLBACK_S in CPU: on 2 cores shared with the
    JVMs of the cluster, a preempted callback's wall time is the scheduler's, not the
    code's; and so is the wait of a callback for the GIL while the thread holding it (the
    Cassandra driver's I/O thread, decoding a page of rows) is preempted, which the loop's
    thread sees as a voluntary wait. A blocking call (a sleep, a socket or file read, a
    lock) on a machine not that loaded is still caught; so is a callback that computes for
    too long, loaded or not.

    A thread that waited (for the GIL, or a wake-up) and was then left on the run queue
    because every core was busy is not preempted, but that wait is the scheduler's too:
    the loop thread's run-queue time (``/proc/<tid>/schedstat``, its second field) is
    taken off a callback's wall time before it is judged. So is a wait while other threads
    of the process used CPU (OTHER_THREADS_S or more): the GIL they held, not the code."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.seen: list[str] = []
        self._running_since: float | None = None  # the current callback's start
        self._callbacks = 0  # callbacks started so far: which one a stack sample is of
        self._sample: tuple[int, str] | None = None
        self._sampling = threading.Event()
        self.collecting = 0.0  # the garbage collector's time, on any thread: not the code's
        self._gc_started: float | None = None
        try:  # this (the loop's) thread's scheduler statistics, read at every callback
            self._schedstat: int | None = os.open(
                f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY
            )
            weakref.finalize(self, os.close, self._schedstat)
        except OSError:  # not Linux, or no schedstats: the run-queue time is not known
            self._schedstat = None

    def _queued_s(self) -> float:
        """Seconds this thread spent runnable but waiting for a core, so far."""
        if self._schedstat is None:
            return 0.0
        return int(os.pread(self._schedstat, 64, 0).split()[1]) / 1e9

    def sample_stacks(self) -> None:
        """Start a thread that takes the loop thread's stack when a callback has held the
        loop SAMPLE_AFTER_S: a report then says where it was blocked. ``stop`` ends it."""
        self._sampling.set()
        threading.Thread(target=self._sampler, name="watchdog-sampler", daemon=True).start()

    def stop(self) -> None:
        self._sampling.clear()

    def _sampler(self) -> None:
        while self._sampling.is_set():
            time.sleep(SAMPLE_EVERY_S)
            since, callback = self._running_since, self._callbacks
            if since is None or time.perf_counter() - since < SAMPLE_AFTER_S:
                continue
            if self._sample is not None and self._sample[0] == callback:
                continue  # this callback's stack is taken already
            frame = sys._current_frames().get(self.thread)
            if frame is not None and self._callbacks == callback:
                self._sample = (callback, "".join(traceback.format_stack(frame)[-12:]))

    def gc_phase(self, phase: str, info: dict) -> None:
        # Any thread's collection: it holds the GIL throughout, so the loop's thread waits
        # for it (voluntarily, without using CPU) when the driver's I/O thread collects.
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            self.collecting += time.perf_counter() - self._gc_started
            self._gc_started = None

    def run(self, handle: asyncio.Handle, run) -> None:
        if threading.get_ident() != self.thread:
            return run(handle)
        wall, cpu, collecting = time.perf_counter(), time.thread_time(), self.collecting
        switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw  # any thread's
        queued, process = self._queued_s(), time.process_time()
        self._callbacks += 1
        callback = self._callbacks
        self._running_since = wall
        try:
            return run(handle)
        finally:
            self._running_since = None
            collected = self.collecting - collecting  # a full collection can take 0.5 s
            queued = self._queued_s() - queued
            wall = time.perf_counter() - wall - collected - queued
            cpu = time.thread_time() - cpu
            if wall >= SLOW_CALLBACK_S:
                # Other threads of the process that computed meanwhile (a fork, a decode
                # in C holding the GIL) kept this one waiting for the GIL: theirs.
                others = time.process_time() - process - cpu
                preempted = (
                    resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw > switches
                    or others >= OTHER_THREADS_S
                )
                described = asyncio.base_events._format_handle(handle)  # as asyncio's own warning
                waited = not preempted and wall >= SLOW_WAIT_S
                if (cpu >= SLOW_CALLBACK_S or waited) and not any(
                    t in described for t in _TEST_CODE
                ):
                    report = f"{described} took {wall:.3f} s ({cpu:.3f} s of CPU)"
                    sample = self._sample
                    if sample is not None and sample[0] == callback:
                        report += f"; the loop's thread was at:\n{sample[1]}"
                    self.seen.append(report)
