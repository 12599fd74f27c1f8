"""The timeline's inboxes (fan-out on write) on both adapters.

The adapter's part: an upload queues its fan-out, a follow records the backfill it
owes, inbox rows come back newest first between their bounds and never past their
window, and a poster's fan-out mark only goes up.

The whole timeline's part, as a property: whatever fan-outs ran to the end, were cut
short at any row (a crash), or never ran; whatever follows are new (backfilled or not),
ended, or of an account fanned out at read time (more followers than the setting); and
whatever photos are deleted, private, or older than the inbox window: every walk of
"recent" and "top" is the sorted merge of the photos the reader may see, each once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from instastore import ids
from instastore.errors import Unavailable
from instastore.fanout import Fanout
from instastore.model import User, Visibility
from instastore.photos import Photos
from instastore.storage.ports import InboxEntry

from ..factories import make_photo, new_id
from .test_timeline_rules import timeline_over, walk, whole_walks

DAY_MS = 86_400_000


async def user(stores, name: str, private: bool = False) -> User:
    account = User(new_id(), f"{name}_{uuid.uuid4().hex[:8]}", "x", private=private)
    await stores.accounts.create_user(account)
    return account


async def test_an_upload_queues_its_fan_out_until_it_is_forgotten(stores):
    owner = await user(stores, "owner")
    photos = [make_photo(owner.id, "p") for _ in range(3)]
    for photo in photos:
        await stores.photos.save_photo(photo, [])
    assert await stores.inbox.pending_fanouts(owner.id) == sorted(p.id for p in photos)
    queued = await stores.inbox.queued_fanouts(10_000)
    assert {(owner.id, p.id) for p in photos} <= set(queued)
    await stores.inbox.forget_fanout(owner.id, photos[1].id)
    await stores.inbox.forget_fanout(owner.id, photos[1].id)  # gone already: nothing
    assert await stores.inbox.pending_fanouts(owner.id) == [photos[0].id, photos[2].id]


async def test_inbox_rows_come_newest_first_between_bounds_and_never_past_their_window(stores):
    reader, owner = await user(stores, "reader"), await user(stores, "owner")
    now = datetime.now(UTC)
    later = now + timedelta(days=1)
    kept = [new_id(ids.now_ms() - k * 1000) for k in range(5)]
    entries = [InboxEntry(reader.id, owner.id, p, later) for p in kept]
    gone = new_id(ids.now_ms() - 10_000)
    entries.append(InboxEntry(reader.id, owner.id, gone, now - timedelta(seconds=1)))
    await stores.inbox.add_to_inboxes(entries)
    await stores.inbox.add_to_inboxes(entries[:2])  # the same rows again: the same rows
    newest_first = sorted(kept, reverse=True)
    assert await stores.inbox.inbox_ids(reader.id, None, 0, 100) == newest_first
    assert await stores.inbox.inbox_ids(reader.id, None, 0, 2) == newest_first[:2]
    between = await stores.inbox.inbox_ids(reader.id, newest_first[0], newest_first[4], 100)
    assert between == newest_first[1:4]
    other = await user(stores, "other")
    assert await stores.inbox.inbox_ids(other.id, None, 0, 100) == []


async def test_a_fan_out_mark_only_goes_up_and_comes_with_the_newest_id(stores):
    owner = await user(stores, "owner")
    first, second = make_photo(owner.id, "a"), make_photo(owner.id, "b")
    quiet = await user(stores, "quiet")
    for photo in (first, second):
        await stores.photos.save_photo(photo, [])
    marks = await stores.inbox.latest_marks([owner.id, quiet.id])
    assert marks == {owner.id: (second.id, 0)}  # no photo, no entry
    await stores.inbox.mark_fanned(owner.id, second.id)
    await stores.inbox.mark_fanned(owner.id, first.id)  # late and lower: changes nothing
    assert await stores.inbox.latest_marks([owner.id]) == {owner.id: (second.id, second.id)}


async def test_a_follow_owes_a_backfill_until_done_or_unfollowed(stores):
    reader, a, b = await user(stores, "reader"), await user(stores, "a"), await user(stores, "b")
    first = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    await stores.graph.follow(reader.id, a.id, first)
    await stores.graph.follow(reader.id, b.id, first)
    owed = await stores.inbox.inbox_backfills(reader.id)
    assert sorted(f for f, _ in owed) == sorted([a.id, b.id])
    since = dict(owed)[a.id]
    await stores.graph.unfollow(reader.id, b.id)
    assert [f for f, _ in await stores.inbox.inbox_backfills(reader.id)] == [a.id]
    # Unfollowed and followed again while the first follow's backfill ran: finishing that
    # backfill leaves the second follow's row (its photos since may be missing).
    await stores.graph.unfollow(reader.id, a.id)
    await stores.graph.follow(reader.id, a.id, first + timedelta(minutes=1))
    await stores.inbox.forget_backfill(reader.id, a.id, since)
    assert [f for f, _ in await stores.inbox.inbox_backfills(reader.id)] == [a.id]
    (again,) = await stores.inbox.inbox_backfills(reader.id)
    await stores.inbox.forget_backfill(reader.id, a.id, again[1])
    assert await stores.inbox.inbox_backfills(reader.id) == []


async def test_a_fan_out_fills_every_followers_inbox_and_raises_the_mark(stores, adapter_settings):
    owner = await user(stores, "owner")
    followers = [await user(stores, f"f{n}") for n in range(3)]
    now = datetime.now(UTC)
    for follower in followers:
        await stores.graph.follow(follower.id, owner.id, now)
    old = make_photo(owner.id, "old", photo_id=new_id(ids.now_ms() - 40 * DAY_MS))
    recent = [make_photo(owner.id, "p") for _ in range(2)]
    for photo in (old, *recent):
        await stores.photos.save_photo(photo, [])
    fanout = Fanout(stores.inbox, stores.graph, stores.photos, adapter_settings)
    assert await fanout.fan_out(owner.id) == len(followers) * len(recent)  # not the old one
    for follower in followers:
        inbox = await stores.inbox.inbox_ids(follower.id, None, 0, 10)
        assert inbox == sorted((p.id for p in recent), reverse=True)
    assert await stores.inbox.latest_marks([owner.id]) == {owner.id: (recent[1].id, recent[1].id)}
    assert await stores.inbox.pending_fanouts(owner.id) == []
    assert await fanout.fan_out(owner.id) == 0  # nothing above the mark, nothing queued


async def test_an_account_past_the_follower_threshold_is_merged_at_read(stores, adapter_settings):
    owner = await user(stores, "star")
    fans = [await user(stores, f"fan{n}") for n in range(3)]
    for fan in fans:
        await stores.graph.follow(fan.id, owner.id, datetime.now(UTC))
    photo = make_photo(owner.id, "p")
    await stores.photos.save_photo(photo, [])
    few = dataclasses.replace(adapter_settings, fanout_max_followers=2)
    fanout = Fanout(stores.inbox, stores.graph, stores.photos, few)
    assert await fanout.fan_out(owner.id) == 0
    assert await stores.inbox.pending_fanouts(owner.id) == []  # nothing owed
    assert await stores.inbox.inbox_ids(fans[0].id, None, 0, 10) == []
    assert await stores.inbox.latest_marks([owner.id]) == {owner.id: (photo.id, 0)}
    photos = Photos(stores.photos, stores.search, few)
    timeline = timeline_over(stores, few, photos, inbox=stores.inbox, fanout=fanout)
    assert await walk(timeline, fans[0], "recent", 5) == [photo.id]
    await fanout.drain()


class CrashingInbox:
    """The inbox store, but the process "dies" after ``rows`` inbox rows: the rows
    before it are written, nothing after it (a kill -9 in the middle of a fan-out)."""

    def __init__(self, inbox, rows: int) -> None:
        self.inbox = inbox
        self.rows = rows

    def __getattr__(self, name):
        return getattr(self.inbox, name)

    async def add_to_inboxes(self, entries):
        take, self.rows = entries[: self.rows], max(0, self.rows - len(entries))
        await self.inbox.add_to_inboxes(take)
        if len(take) < len(entries):
            raise Unavailable("killed in the middle of a fan-out")


Post = tuple[int, Visibility, bool]  # (minutes ago, visibility, deleted?)
FANOUT_STATES = ["done", "crashed", "never", "star"]


@st.composite
def inbox_world(draw: st.DrawFn):
    """Followees: (account private?, fan-out state, crash after how many rows, follow
    state, their photos); follow states: followed before the fan-out ("before"), after
    it ("after": a backfill owed), after it and backfilled ("backfilled"), or followed
    and then unfollowed ("ended")."""
    post = st.tuples(
        st.one_of(st.integers(0, 3 * 24 * 60), st.integers(35 * 24 * 60, 40 * 24 * 60)),
        st.sampled_from([Visibility.PUBLIC, Visibility.FOLLOWERS, Visibility.PRIVATE]),
        st.booleans(),
    )
    followee = st.tuples(
        st.booleans(),
        st.sampled_from(FANOUT_STATES),
        st.integers(0, 6),
        st.sampled_from(["before", "after", "backfilled", "ended"]),
        st.lists(post, max_size=5),
    )
    return draw(st.lists(followee, min_size=1, max_size=6))


@whole_walks(inbox_world())
async def test_whole_walks_across_the_fan_out_boundary_are_the_sorted_merge(
    stores, adapter_settings, world, window, limit, page_reads
):
    reader = await user(stores, "reader")
    other = await user(stores, "other")  # a second follower of each: fan-outs write two rows
    now = datetime.now(UTC)
    few = dataclasses.replace(adapter_settings, fanout_max_followers=2)
    fanout = Fanout(stores.inbox, stores.graph, stores.photos, few)
    visible: set[int] = set()
    for n, (private, state, crash_after, follow, posts) in enumerate(world):
        followee = await user(stores, f"w{n}", private=private)
        await stores.graph.follow(other.id, followee.id, now)
        if follow in ("before", "ended"):
            await stores.graph.follow(reader.id, followee.id, now)
        if state == "star":  # one follower more than the threshold
            await stores.graph.follow((await user(stores, f"s{n}")).id, followee.id, now)
        shown = []
        for minutes, visibility, gone in posts:
            photo_id = new_id(ids.now_ms() - minutes * 60_000)
            photo = make_photo(followee.id, "p", photo_id=photo_id, visibility=visibility)
            await stores.photos.save_photo(photo, [])
            if gone:
                await stores.photos.set_deleted(photo, now)
            elif visibility is not Visibility.PRIVATE:
                shown.append(photo.id)
        if state in ("done", "star"):
            await fanout.fan_out(followee.id)
        elif state == "crashed":
            crashing = Fanout(
                CrashingInbox(stores.inbox, crash_after), stores.graph, stores.photos, few
            )
            with contextlib.suppress(Unavailable):
                await crashing.fan_out(followee.id)
        if follow in ("after", "backfilled"):
            await stores.graph.follow(reader.id, followee.id, now)
        if follow == "backfilled":
            for followee_id, since in await stores.inbox.inbox_backfills(reader.id):
                if followee_id == followee.id:
                    await fanout.backfill(reader.id, followee_id, since)
        if follow == "ended":
            await stores.graph.unfollow(reader.id, followee.id)
        else:
            visible.update(shown)
    oracle = sorted(visible, reverse=True)
    photos = Photos(stores.photos, stores.search, few)
    timeline = timeline_over(
        stores,
        few,
        photos,
        page_reads=page_reads,
        top_window=window,
        inbox=stores.inbox,
        fanout=fanout,
    )
    assert await walk(timeline, reader, "recent", limit) == oracle
    top = await walk(timeline, reader, "top", limit)
    assert sorted(top, reverse=True) == oracle  # every visible photo, once
    await fanout.drain()  # the backfills the first page started
    fresh = timeline_over(
        stores, few, photos, page_reads=page_reads, inbox=stores.inbox, fanout=fanout
    )
    assert await walk(fresh, reader, "recent", limit) == oracle
    await fanout.drain()
