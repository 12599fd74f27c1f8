"""The event-loop watchdog itself: it catches a callback that computes past
SLOW_CALLBACK_S or waits (sleeps) past SLOW_WAIT_S, and lets a quick one and the tests'
own code through."""

from __future__ import annotations

import asyncio
import functools
import resource
import threading
import time

from ..watchdog import SLOW_CALLBACK_S, SLOW_WAIT_S, Watchdog


def _run(callback) -> list[str]:
    loop = asyncio.new_event_loop()
    try:
        watchdog = Watchdog()
        handle = asyncio.Handle(callback, (), loop)
        watchdog.run(handle, asyncio.Handle._run)
        return watchdog.seen
    finally:
        loop.close()


def _compute() -> None:
    started = time.thread_time()
    while time.thread_time() - started < SLOW_CALLBACK_S * 1.5:
        pass


def test_a_sleeping_callback_is_caught():
    # A sleep that the kernel also preempted (after it woke, on a loaded machine) is let
    # through, as any callback preempted under SLOW_CALLBACK_S of CPU is: so up to three
    # tries, of which one unpreempted is enough to show that sleeps are caught.
    for _ in range(3):
        seen = _run(lambda: time.sleep(SLOW_WAIT_S * 1.2))
        if seen:
            break
    (caught,) = seen
    assert "took" in caught


def _napping() -> None:
    time.sleep(SLOW_WAIT_S * 1.2)  # the line a report must point at


def test_a_report_says_where_the_loops_thread_was_blocked(monkeypatch):
    # Never preempted (getrusage held still): the decision to report is not the machine's
    # load, and what is tested is that the report carries the sampled stack.
    still = resource.getrusage(resource.RUSAGE_SELF)
    monkeypatch.setattr(resource, "getrusage", lambda who: still)
    loop = asyncio.new_event_loop()
    watchdog = Watchdog()
    watchdog.sample_stacks()
    try:
        watchdog.run(asyncio.Handle(_napping, (), loop), asyncio.Handle._run)
    finally:
        watchdog.stop()
        loop.close()
    (caught,) = watchdog.seen
    assert "the loop's thread was at:" in caught
    assert "in _napping" in caught and "time.sleep(SLOW_WAIT_S * 1.2)" in caught


def test_a_computing_callback_is_caught():
    (seen,) = _run(_compute)
    assert "s of CPU" in seen


def test_a_short_wait_passes_and_a_long_one_is_caught(monkeypatch):
    """A wait with no CPU past SLOW_CALLBACK_S but short of SLOW_WAIT_S is the machine's
    stall as likely as the code's: let through; past SLOW_WAIT_S, caught. Never preempted
    here (getrusage held still), so the decision is what is tested."""
    still = resource.getrusage(resource.RUSAGE_SELF)
    monkeypatch.setattr(resource, "getrusage", lambda who: still)
    assert _run(lambda: time.sleep((SLOW_CALLBACK_S + SLOW_WAIT_S) / 2)) == []
    assert _run(lambda: time.sleep(SLOW_WAIT_S * 1.2))


def test_a_quick_callback_passes():
    assert _run(lambda: None) == []


def test_the_garbage_collectors_time_is_not_the_callbacks():
    loop = asyncio.new_event_loop()
    try:
        watchdog = Watchdog()

        def collect_slowly() -> None:  # a full collection that takes long, as late in a session
            watchdog.gc_phase("start", {})
            _compute()
            watchdog.gc_phase("stop", {})

        watchdog.run(asyncio.Handle(collect_slowly, (), loop), asyncio.Handle._run)
        assert watchdog.seen == []
    finally:
        loop.close()


def test_a_collection_on_another_thread_is_not_the_callbacks(monkeypatch):
    # The driver's I/O thread collecting holds the GIL: the loop's thread waits for it.
    loop = asyncio.new_event_loop()
    try:
        watchdog = Watchdog()

        def collect_slowly() -> None:
            watchdog.gc_phase("start", {})
            time.sleep(SLOW_WAIT_S * 1.2)  # a collection the loop's thread waits out
            watchdog.gc_phase("stop", {})

        def wait_for_the_collection() -> None:
            collector = threading.Thread(target=collect_slowly)
            collector.start()
            collector.join()

        watchdog.run(asyncio.Handle(wait_for_the_collection, (), loop), asyncio.Handle._run)
        assert watchdog.seen == []

        # ... and without the collection, the same wait is caught. On a loaded machine the
        # kernel preempts some thread of the process during nearly any wait of 0.4 s,
        # which excuses it (see Watchdog): here no thread is ever preempted, so the
        # decision, not the machine's load, is what is tested.
        still = resource.getrusage(resource.RUSAGE_SELF)
        monkeypatch.setattr(resource, "getrusage", lambda who: still)

        def wait_for_a_sleep() -> None:
            sleeper = threading.Thread(target=time.sleep, args=(SLOW_WAIT_S * 1.2,))
            sleeper.start()
            sleeper.join()

        watchdog.run(asyncio.Handle(wait_for_a_sleep, (), loop), asyncio.Handle._run)
        assert watchdog.seen
    finally:
        loop.close()


def test_time_spent_waiting_for_a_core_is_not_the_callbacks(monkeypatch):
    """A thread left runnable on the run queue (every core busy) is not preempted, but
    its wait is the scheduler's: taken off the wall time before the callback is judged.
    The run-queue time is given here, so the decision is what is tested."""
    still = resource.getrusage(resource.RUSAGE_SELF)
    monkeypatch.setattr(resource, "getrusage", lambda who: still)  # never preempted
    loop = asyncio.new_event_loop()
    try:
        watchdog = Watchdog()
        queued = iter([0.0, SLOW_WAIT_S * 2])  # before and after the callback
        monkeypatch.setattr(watchdog, "_queued_s", lambda: next(queued))
        watchdog.run(asyncio.Handle(time.sleep, (SLOW_WAIT_S * 1.2,), loop), asyncio.Handle._run)
        assert watchdog.seen == []

        queued = iter([0.0, 0.01])  # the same wait, nearly all off the run queue: caught
        watchdog.run(asyncio.Handle(time.sleep, (SLOW_WAIT_S * 1.2,), loop), asyncio.Handle._run)
        assert watchdog.seen
    finally:
        loop.close()


def test_the_run_queue_time_is_read_from_the_kernel():
    watchdog = Watchdog()
    assert watchdog._schedstat is not None  # Linux: /proc/<pid>/task/<tid>/schedstat
    before = watchdog._queued_s()
    _compute()  # on a busy machine some of it is spent waiting for a core: never less
    assert watchdog._queued_s() >= before >= 0


def test_a_wait_for_a_thread_that_computes_is_not_the_callbacks(monkeypatch):
    """Waiting for the GIL a computing thread of the process holds (a fork, a decode in
    C) is that thread's: excused when other threads used CPU meanwhile; the same wait
    for a thread that only sleeps is caught (as in the collection test above)."""
    still = resource.getrusage(resource.RUSAGE_SELF)
    monkeypatch.setattr(resource, "getrusage", lambda who: still)  # never preempted
    loop = asyncio.new_event_loop()
    try:
        watchdog = Watchdog()

        def wait_for(target) -> None:
            other = threading.Thread(target=target)
            other.start()
            other.join()

        watchdog.run(asyncio.Handle(wait_for, (_compute,), loop), asyncio.Handle._run)
        assert watchdog.seen == []
        sleep = functools.partial(time.sleep, SLOW_WAIT_S * 1.2)
        watchdog.run(asyncio.Handle(wait_for, (sleep,), loop), asyncio.Handle._run)
        assert watchdog.seen
    finally:
        loop.close()
