"""Fan-out on write: a new photo's id goes into each follower's timeline inbox.

The design is the hybrid of Instagram's and Twitter's published feeds (docs/DESIGN.md,
"Timeline"): the followees' own UserPhoto rows stay the source of truth, and each
reader's inbox row (``timeline_inbox``) is a copy of the last ``inbox_days`` of them that
makes a page one read instead of one per followee. Three things keep the copy honest:

1. **The queue.** An upload's logged batch queues its fan-out (``fanout_queue``); the
   fan-out of an owner writes every queued photo, and every photo above the owner's
   mark inside the window, to every follower's inbox, then raises the owner's mark
   (``mark_fanned``: every photo of the owner at or below it, inside the window, is in
   every follower's inbox) and takes the entries off the queue. Rows are written again
   as often as a fan-out runs (the same row twice is one row), so a fan-out killed at
   any point is simply run again: by the owner's next upload or by ``sweep``.
2. **The mark.** A reader merges from its own rows any followee whose newest id is past
   its mark: the photos of a fan-out still running, killed, or never run (an account of
   more than ``fanout_max_followers`` followers, merged at read like Twitter's
   celebrities). Nothing a fan-out has not finished is missed.
3. **The backfill.** A follow's batch records that the follower's inbox lacks the new
   followee's recent photos (``inbox_backfills``); until ``backfill`` copies them the
   reader merges that followee from its rows.

Visibility is never decided here: a row names a photo, and each page reads the records
and decides who may see what exactly as before (deleted, private, blocked, unfollowed
photos are skipped at read time). So a fan-out writes the same rows whatever the photo's
visibility, and nothing is taken back on delete, unfollow or a private switch.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from instastore import ids, metrics
from instastore.background import SingleFlight
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import InstastoreError
from instastore.limits import (
    FANOUT_IDS,
    FANOUT_SWEEP_AFTER_S,
    FANOUT_SWEEP_OWNERS,
    FOLLOWERS_PAGE,
    INBOX_SLACK,
)
from instastore.storage.ports import FollowGraph, InboxEntry, InboxStore, PhotoStore

log = logging.getLogger(__name__)


class Fanout:
    """Writes and repairs the timeline inboxes of one process's uploads and follows."""

    def __init__(
        self,
        inbox: InboxStore,
        graph: FollowGraph,
        photo_store: PhotoStore,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.inbox = inbox
        self.graph = graph
        self.photo_store = photo_store
        self.settings = settings
        self.clock = clock
        # One run per poster's fan-out and per backfill at a time; a request during a run
        # makes one more run after it.
        self._runs = SingleFlight(_not_finished)
        self.on_backfilled: Callable[[int], None] | None = None  # the reader's caches
        self.progress: Callable[[str], None] | None = None  # a line per page of followers

    @property
    def enabled(self) -> bool:
        return self.settings.fanout_max_followers > 0

    def window_floor(self) -> int:
        """The inbox holds every fanned-out photo with an id above this: photos younger
        than ``inbox_days`` less ``INBOX_SLACK`` (rows live ``inbox_days`` by the photo's
        own time, so a replica's clock a little ahead never drops one a reader counts on)."""
        since = self.clock() - timedelta(days=self.settings.inbox_days) + INBOX_SLACK
        return ids.id_for_time(max(ids.EPOCH_MS, int(since.timestamp() * 1000)))

    def _until(self, photo_id: int) -> datetime:
        return ids.created_at(photo_id) + timedelta(days=self.settings.inbox_days)

    # ---- in the background ---------------------------------------------------------

    def schedule(self, owner_id: int) -> None:
        """Fan the owner's queued photos out soon, in this process, once at a time per
        owner (a request during a run makes one more run after it)."""
        if self.enabled:
            self._runs.start(("fanout", owner_id), lambda: self.fan_out(owner_id), rerun=True)

    def schedule_backfill(self, reader_id: int, followee_id: int, since: datetime) -> None:
        self._runs.start(
            ("backfill", reader_id, followee_id, since),
            lambda: self.backfill(reader_id, followee_id, since),
            rerun=True,
        )

    async def drain(self) -> None:
        """Wait for this process's fan-outs and backfills under way (tests, shutdown)."""
        await self._runs.drain()

    # ---- the work ------------------------------------------------------------------

    async def fan_out(self, owner_id: int) -> int:
        """Fan out the owner's queued photos and any above its mark inside the window;
        the inbox rows written. Safe to run at any time, any number of times, anywhere."""
        queued = await self.inbox.pending_fanouts(owner_id)
        followers, _ = await self.graph.count_follows(owner_id)
        if followers > self.settings.fanout_max_followers:
            # Merged at read time: its mark stays below its photos, so every reader reads
            # its rows (one read per page, whatever its followers).
            for photo_id in queued:
                await self.inbox.forget_fanout(owner_id, photo_id)
            metrics.FANOUTS.labels("skipped").inc()
            return 0
        floor = self.window_floor()
        _, mark = (await self.inbox.latest_marks([owner_id])).get(owner_id, (0, 0))
        todo = sorted(
            set(await self._ids_above(owner_id, max(mark, floor)))
            | {p for p in queued if p > floor}
        )
        written = 0
        # Oldest first, a chunk at a time, the mark raised after each: a run cut short
        # leaves the mark at the last chunk it finished.
        for start in range(0, len(todo), FANOUT_IDS):
            chunk = todo[start : start + FANOUT_IDS]
            written += await self._to_followers(owner_id, chunk)
            if chunk[-1] > mark:
                await self.inbox.mark_fanned(owner_id, chunk[-1])
        for photo_id in queued:
            await self.inbox.forget_fanout(owner_id, photo_id)
        metrics.FANOUTS.labels("done").inc()
        return written

    async def _ids_above(self, user_id: int, floor: int) -> list[int]:
        """The user's photo ids above ``floor``, newest first (a page at a time)."""
        found: list[int] = []
        before = None
        while True:
            page = await self.photo_store.user_photo_ids(user_id, before, FANOUT_IDS)
            found += [p for p in page if p > floor]
            if len(page) < FANOUT_IDS or not page or page[-1] <= floor:
                return found
            before = page[-1]

    async def _to_followers(self, owner_id: int, photo_ids: list[int]) -> int:
        written = 0
        after = None
        while True:
            followers = await self.graph.followers(owner_id, after, FOLLOWERS_PAGE)
            entries = [
                InboxEntry(reader, owner_id, photo_id, self._until(photo_id))
                for reader in followers
                for photo_id in photo_ids
            ]
            await self.inbox.add_to_inboxes(entries)
            written += len(entries)
            metrics.FANOUT_ROWS.labels("fanout").inc(len(entries))
            if self.progress is not None:
                self.progress(
                    f"owner {owner_id}: {len(photo_ids)} photo(s) to {len(followers)} more "
                    f"follower(s) ({written} rows)"
                )
            if len(followers) < FOLLOWERS_PAGE:
                return written
            after = followers[-1]

    async def backfill(self, reader_id: int, followee_id: int, since: datetime) -> int:
        """Copy the followee's photos inside the window into the reader's inbox, then
        take the follow's backfill off the record; the rows written."""
        if await self.graph.is_following(reader_id, followee_id):
            photo_ids = await self._ids_above(followee_id, self.window_floor())
            entries = [InboxEntry(reader_id, followee_id, p, self._until(p)) for p in photo_ids]
            await self.inbox.add_to_inboxes(entries)
            metrics.FANOUT_ROWS.labels("backfill").inc(len(entries))
        else:
            entries = []
        await self.inbox.forget_backfill(reader_id, followee_id, since)
        if self.on_backfilled is not None:
            self.on_backfilled(reader_id)
        return len(entries)

    async def sweep(
        self, after_s: float = FANOUT_SWEEP_AFTER_S, owners: int = FANOUT_SWEEP_OWNERS
    ) -> int:
        """Run the fan-outs a crash or a failure left queued (those queued more than
        ``after_s`` ago: younger ones are their uploads' own, under way), of at most
        ``owners`` owners; the owners fanned out."""
        if not self.enabled:
            return 0
        cutoff = ids.id_for_time(
            int((self.clock() - timedelta(seconds=after_s)).timestamp() * 1000)
        )
        queued = await self.inbox.queued_fanouts(owners * 4)
        due = sorted({owner for owner, photo_id in queued if photo_id < cutoff})
        random.shuffle(due)  # hosts sweeping at once mostly take different owners
        for owner in due[:owners]:
            await self.fan_out(owner)
        return len(due[:owners])


def _not_finished(key: object, exc: Exception) -> None:
    """A fan-out or backfill cut short: left queued (or owed), the sweep (or the reader's
    next page) runs it again."""
    metrics.FANOUTS.labels("failed").inc()
    expected = isinstance(exc, InstastoreError)  # a store unavailable; else a bug
    log.warning("timeline %s not finished (run again later): %s", key, exc, exc_info=not expected)
