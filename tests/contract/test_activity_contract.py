"""The stores' part of the activity inbox (``ActivityStore``): both adapters, same
behaviour: events newest first and paged, one row per event id however often written,
kept until their time; one event id per action, claimed once; a read mark that only
rises."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from instastore.storage.ports import ActivityEvent

from ..factories import new_id

LATER = timedelta(days=1)


def _until(seconds: float = LATER.total_seconds()) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _event(user_id: int, kind: str = "follow", **fields) -> ActivityEvent:
    return ActivityEvent(user_id, fields.pop("event_id", new_id()), kind, new_id(), **fields)


async def test_events_come_back_newest_first_and_paged(stores):
    user, other = new_id(), new_id()
    made = [_event(user, "like", photo_id=new_id()) for _ in range(3)]
    made += [_event(user, "comment", photo_id=new_id(), comment_id=new_id()) for _ in range(2)]
    made += [_event(user, kind) for kind in ("follow", "request", "approved", "mention")]
    for event in reversed(made):  # written out of order: listed by id
        await stores.activity.add_event(event, _until())
    await stores.activity.add_event(_event(other), _until())
    newest_first = sorted(made, key=lambda e: e.event_id, reverse=True)

    assert await stores.activity.events(user, None, 0, 100) == newest_first  # every field back
    seen, before = [], None
    while True:
        page = await stores.activity.events(user, before, 0, 4)
        seen += page
        if len(page) < 4:
            break
        before = page[-1].event_id
    assert seen == newest_first
    # Strictly between after and before.
    middle = newest_first[2].event_id
    assert await stores.activity.events(user, middle, 0, 100) == newest_first[3:]
    assert await stores.activity.events(user, None, middle, 100) == newest_first[:2]
    assert await stores.activity.events(user, newest_first[0].event_id, middle, 100) == [
        newest_first[1]
    ]
    assert await stores.activity.events(new_id(), None, 0, 10) == []


async def test_an_event_written_twice_is_one_row(stores):
    user = new_id()
    event = _event(user, "comment", photo_id=new_id(), comment_id=new_id())
    for _ in range(3):
        await stores.activity.add_event(event, _until())
    assert await stores.activity.events(user, None, 0, 10) == [event]


async def test_an_event_lives_until_its_time(stores):
    user = new_id()
    past = _event(user)
    await stores.activity.add_event(past, _until(-1))  # past its window: never written
    assert await stores.activity.events(user, None, 0, 10) == []
    brief, kept = _event(user), _event(user)
    await stores.activity.add_event(brief, _until(4))  # a TTL of 3 s on Cassandra
    await stores.activity.add_event(kept, _until())
    assert {e.event_id for e in await stores.activity.events(user, None, 0, 10)} == {
        brief.event_id,
        kept.event_id,
    }
    await asyncio.sleep(4.5)
    assert await stores.activity.events(user, None, 0, 10) == [kept]


async def test_an_action_claims_one_event_id(stores):
    user, other = new_id(), new_id()
    first, second = new_id(), new_id()
    assert await stores.activity.claim_event_id(user, "like:1:2", first, _until()) == first
    # A retry with the same candidate, and a repeat with another: the id held.
    assert await stores.activity.claim_event_id(user, "like:1:2", first, _until()) == first
    assert await stores.activity.claim_event_id(user, "like:1:2", second, _until()) == first
    # Another action, or the same action in another inbox: a claim of its own.
    assert await stores.activity.claim_event_id(user, "like:1:3", second, _until()) == second
    assert await stores.activity.claim_event_id(other, "like:1:2", second, _until()) == second


async def test_two_claims_at_once_agree(stores):
    user = new_id()
    candidates = [new_id() for _ in range(6)]
    held = await asyncio.gather(
        *(stores.activity.claim_event_id(user, "follow:9", c, _until()) for c in candidates)
    )
    assert len(set(held)) == 1 and held[0] in candidates


async def test_a_claim_lapses_with_its_time(stores):
    user = new_id()
    first, second = new_id(), new_id()
    assert await stores.activity.claim_event_id(user, "follow:7", first, _until(1.5)) == first
    await asyncio.sleep(2.2)
    assert await stores.activity.claim_event_id(user, "follow:7", second, _until()) == second


async def test_the_read_mark_only_rises(stores):
    user, other = new_id(), new_id()
    assert await stores.activity.seen_mark(user) == 0
    low, high = new_id(), new_id()
    await stores.activity.mark_seen(user, high)
    assert await stores.activity.seen_mark(user) == high
    await stores.activity.mark_seen(user, low)  # late, lower: changes nothing
    assert await stores.activity.seen_mark(user) == high
    await stores.activity.mark_seen(user, high)  # again: the same
    assert await stores.activity.seen_mark(user) == high
    assert await stores.activity.seen_mark(other) == 0
