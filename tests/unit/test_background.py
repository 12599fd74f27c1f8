"""``SingleFlight``: one task per key; a start during a run is dropped or, asked for,
makes exactly one more run; a run's error is reported, never lost in a task."""

from __future__ import annotations

import asyncio

from instastore.background import SingleFlight


async def test_a_start_during_a_run_is_dropped_or_runs_once_more():
    errors: list = []
    flights = SingleFlight(lambda key, exc: errors.append((key, exc)))
    gate = asyncio.Event()
    runs = {"dropped": 0, "rerun": 0}

    async def work(key: str) -> None:
        runs[key] += 1
        await gate.wait()

    for key, rerun in (("dropped", False), ("rerun", True)):
        for _ in range(3):  # the first starts; two more arrive while it runs
            flights.start(key, lambda key=key: work(key), rerun=rerun)
            await asyncio.sleep(0)
    assert "dropped" in flights and runs == {"dropped": 1, "rerun": 1}
    gate.set()
    await flights.drain()
    assert runs == {"dropped": 1, "rerun": 2} and errors == []
    assert "dropped" not in flights


async def test_a_failed_run_is_reported_and_the_next_start_begins_afresh():
    errors: list = []
    flights = SingleFlight(lambda key, exc: errors.append((key, str(exc))))
    calls = []

    async def fail() -> None:
        calls.append("fail")
        raise OSError("store unreachable")

    flights.start("k", fail, rerun=True)
    flights.start("k", fail, rerun=True)  # owed a rerun, but the failure ends the runs
    await flights.drain()
    assert calls == ["fail"] and errors == [("k", "store unreachable")]
    flights.start("k", fail)
    await flights.drain()
    assert calls == ["fail", "fail"] and len(errors) == 2
