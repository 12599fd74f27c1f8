"""Ids: time-sortable, strictly increasing, unique across workers, never wrapping."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instastore import ids
from instastore.errors import InvalidInput


class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.ms

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.ms += max(1, round(seconds * 1000))


def test_layout_round_trips():
    at = ids.EPOCH_MS + 123_456_789
    i = ids.make_id(at, 4321, 999)
    assert ids.unix_ms_of(i) == at
    assert ids.worker_of(i) == 4321
    assert i & ids.MAX_SEQUENCE == 999
    assert i < 2**63  # fits a signed bigint (Cassandra, SQLite)


def test_strictly_increasing_and_waits_past_1024_per_ms():
    clock = FakeClock(ids.EPOCH_MS + 10_000)
    gen = ids.IdGenerator(3, clock=clock, sleep=clock.sleep)
    made = [gen.next_id() for _ in range(3000)]  # the clock never moves by itself
    assert made == sorted(made) and len(set(made)) == 3000
    assert clock.slept, "it must wait for the next millisecond, not wrap the sequence"
    assert ids.unix_ms_of(made[-1]) == ids.EPOCH_MS + 10_002


def test_a_small_step_back_of_the_clock_is_waited_out():
    clock = FakeClock(ids.EPOCH_MS + 50_000)
    gen = ids.IdGenerator(1, clock=clock, sleep=clock.sleep)
    first = gen.next_id()
    clock.ms -= 500
    second = gen.next_id()
    assert second > first


def test_a_big_step_back_is_refused():
    clock = FakeClock(ids.EPOCH_MS + 50_000)
    gen = ids.IdGenerator(1, clock=clock, sleep=clock.sleep)
    gen.next_id()
    clock.ms -= ids.MAX_CLOCK_BACKWARDS_MS + 1
    with pytest.raises(ids.ClockWentBackwards):
        gen.next_id()


def test_two_workers_never_collide_even_on_one_clock():
    clock = FakeClock(ids.EPOCH_MS + 1)
    a = ids.IdGenerator(1, clock=clock, sleep=clock.sleep)
    b = ids.IdGenerator(2, clock=clock, sleep=clock.sleep)
    made = [g.next_id() for _ in range(2000) for g in (a, b)]
    assert len(set(made)) == len(made)


def test_threads_share_a_generator_safely():
    gen = ids.IdGenerator(5)
    out: list[list[int]] = [[] for _ in range(4)]

    def work(k: int) -> None:
        out[k] = [gen.next_id() for _ in range(5000)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for part in out for i in part]
    assert len(set(every)) == len(every)
    assert all(part == sorted(part) for part in out)


def test_worker_range_is_checked():
    with pytest.raises(ValueError):
        ids.IdGenerator(ids.MAX_WORKER + 1)


@given(st.integers(min_value=1, max_value=ids.MAX_ID))
def test_format_and_parse_round_trip(i):
    assert ids.parse_id(ids.format_id(i)) == i


@pytest.mark.parametrize(
    "text", ["", "-1", "0", "abc", "1e5", " 12", str(ids.MAX_ID + 1), "9" * 21]
)
def test_parse_refuses_what_is_not_an_id(text):
    with pytest.raises(InvalidInput):
        ids.parse_id(text)


def test_buckets_follow_time():
    now = ids.now_ms()
    early, late = ids.id_for_time(now - 30 * 86_400_000), ids.id_for_time(now)
    assert ids.bucket_of(early) < ids.bucket_of(late)
    assert 4 <= ids.bucket_of(late) - ids.bucket_of(early) <= 5  # 30 days of ~6.2-day buckets


def test_media_secrets_are_random_and_url_safe():
    secrets = {ids.new_media_secret() for _ in range(1000)}
    assert len(secrets) == 1000
    assert all(len(s) == 16 and s.replace("-", "").replace("_", "").isalnum() for s in secrets)
