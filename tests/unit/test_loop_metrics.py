"""The request path's counters without a lock (``metrics.LoopCounter``/``LoopHistogram``):
exact totals when the event loop and other threads count into the same values at once,
the same samples as prometheus' own ``observe``, and folded by the loop on its next turn
without anyone asking."""

from __future__ import annotations

import asyncio
import random
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from instastore import metrics


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


async def test_the_loop_and_other_threads_counting_at_once_add_up_exactly() -> None:
    registry = CollectorRegistry()
    child = Counter("t_loop_counts", "t", ["k"], registry=registry).labels("a")
    counter = metrics.LoopCounter(child)
    per_thread, threads, per_task, tasks = 20_000, 4, 500, 40
    start = threading.Barrier(threads + 1)

    def elsewhere() -> None:
        start.wait()
        for _ in range(per_thread):
            counter.inc()  # not the main thread: straight into prometheus, locked

    async def on_the_loop() -> None:
        for i in range(per_task):
            counter.inc(2)
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the loop turn: folds run between

    workers = [threading.Thread(target=elsewhere) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    await asyncio.gather(*(on_the_loop() for _ in range(tasks)))
    for worker in workers:
        await asyncio.to_thread(worker.join)
    metrics.fold()
    assert child._value.get() == threads * per_thread + 2 * per_task * tasks


async def test_the_loop_folds_on_its_next_turn_unasked() -> None:
    registry = CollectorRegistry()
    child = Counter("t_unasked", "t", registry=registry)
    counter = metrics.LoopCounter(child)
    gauge = Gauge("t_in_flight", "t", registry=registry)
    in_flight = metrics.LoopCounter(gauge)
    counter.inc(3)
    in_flight.inc()
    assert child._value.get() == 0  # held, not written yet
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert child._value.get() == 3
    assert gauge._value.get() == 1
    in_flight.inc(-1)
    counter.inc(0)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert gauge._value.get() == 0 and child._value.get() == 3


async def test_a_loop_histogram_gives_the_samples_of_observe() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    buckets = metrics.LATENCY_BUCKETS
    folded = metrics.LoopHistogram(
        Histogram("t_seconds", "t", ["r"], buckets=buckets, registry=ours).labels("x")
    )
    plain = Histogram("t_seconds", "t", ["r"], buckets=buckets, registry=theirs).labels("x")
    rng = random.Random(7)
    values = [rng.choice([*buckets, 0.0, 99.0]) for _ in range(300)]  # on the bounds too
    values += [rng.uniform(0, 40) for _ in range(3000)]

    def elsewhere() -> None:
        for v in values[:500]:
            folded.observe(v)

    worker = threading.Thread(target=elsewhere)
    worker.start()
    for i, v in enumerate(values[500:]):
        folded.observe(v)
        if i % 400 == 0:
            await asyncio.sleep(0)
    await asyncio.to_thread(worker.join)
    metrics.fold()
    for v in values:
        plain.observe(v)
    got, want = _samples(ours), _samples(theirs)
    sums = [k for k in want if k[0] == "t_seconds_sum"]
    assert {k: v for k, v in got.items() if k not in sums} == {
        k: v for k, v in want.items() if k not in sums
    }
    for key in sums:  # the same numbers added in another order
        assert abs(got[key] - want[key]) < 1e-6 * want[key]


def test_fold_from_another_thread_leaves_the_loops_counts_alone() -> None:
    registry = CollectorRegistry()
    child = Counter("t_other_fold", "t", registry=registry)
    counter = metrics.LoopCounter(child)
    counter.inc(5)  # the main thread, no loop running: held
    folder = threading.Thread(target=metrics.fold)
    folder.start()
    folder.join()
    assert child._value.get() == 0 and counter.pending == 5
    metrics.fold()
    assert child._value.get() == 5 and counter.pending == 0
