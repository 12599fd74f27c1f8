"""The storage ports: what the core asks of the metadata, one port per aggregate
(accounts, photos, the follow graph, the title index, likes, comments, timeline inboxes,
upload key claims, server keys, leases, the transcode queue, activity inboxes), and of a blob store.
``Stores`` holds them under those names. The photo aggregate has a port per concern
(records, purge queue, scan, pack queue, locator switch, video finish, content index),
held together as ``PhotoPorts``. The shapes of blob keys are in
``instastore.storage.keys``.

Both adapters (embedded, cluster) implement these and are held to them by one contract
suite (``tests/contract``). Every method is a coroutine and never blocks the event loop.
Failures are ``instastore.errors`` exceptions: ``Unavailable`` when the store cannot be
reached (retry later), ``NotFound``, ``Conflict``; never a driver's or WebHDFS's own.

Stores only store and fetch. They do not filter deleted or invisible photos, rank, or
decide who may see what: the core does. Page cursors are ids ("strictly before this id"
for newest-first lists, "strictly after" for follow lists).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol, TypeVar

from instastore.errors import InvalidInput, OutcomeUnknown, Unavailable
from instastore.model import Comment, Photo, PhotoCounts, Rendition, User, UserSession
from instastore.storage.scratch import SCRATCH_GRACE

log = logging.getLogger(__name__)
T = TypeVar("T")
# Pauses before each new try of a write whose outcome was unknown, in seconds: a
# Cassandra write timeout is 2 s by default, a killed node is noticed within a few.
SETTLE_DELAYS_S = (0.25, 1.0, 2.0)


async def settle(
    what: str, write: Callable[[], Awaitable[T]], delays: Sequence[float] = SETTLE_DELAYS_S
) -> T:
    """Run ``write`` again while its outcome is unknown, and return its first known
    result; ``OutcomeUnknown`` if it stays unknown, also when a later try fails outright
    (the first may still have landed). Only for idempotent writes (the same rows again,
    or a conditional write that recognises its own earlier success)."""
    tries = 0
    while True:
        try:
            return await write()
        except OutcomeUnknown as exc:
            if tries == len(delays):
                raise
            log.warning("%s: outcome unknown, trying again in %.2f s: %s", what, delays[tries], exc)
            await asyncio.sleep(delays[tries])
            tries += 1
        except Unavailable as exc:
            if not tries:
                raise  # known not written
            raise OutcomeUnknown(f"{what}: a try timed out, a later one failed: {exc}") from exc


def check_key(key: str) -> str:
    """A key is a relative path of safe segments; never ``..`` or absolute."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"bad blob key {key!r}")  # SECURITY: no path traversal
    return key


class Backend(Protocol):
    """What an adapter has beside its ports: a name (its key in the readiness report),
    a health check and a close. ``Stores`` pings and closes each adapter once."""

    name: str

    async def ping(self) -> None:
        """Return when the store answers a trivial query; raise ``Unavailable`` if not."""

    async def close(self) -> None:
        """Release connections and threads. Idempotent."""


class AccountStore(Protocol):
    """Users and their sessions."""

    async def create_user(self, user: User) -> None:
        """Store a new user. ``Conflict`` if the username is taken (atomically: two
        concurrent creates of one name never both succeed)."""

    async def update_user(self, user: User) -> None:
        """Replace a user's profile fields (display name, private), never its password
        hash: a profile edit made from a copy read before a password change must not
        write the old hash back."""

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Replace a user's password hash alone."""

    async def get_user(self, user_id: int) -> User | None: ...

    async def get_user_by_name(self, username: str) -> User | None: ...

    async def usernames_from(
        self, prefix: str, after: str | None, limit: int
    ) -> list[tuple[str, int]]:
        """(username, user id) of the users whose username starts with ``prefix`` (at
        least ``limits.USERNAME_PREFIX_CHARS`` characters), in username order, strictly
        after the username ``after`` when given. A row may be stale (a user whose creation
        did not finish): the caller reads each user and checks its name."""

    async def create_session(self, token_hash: str, session: UserSession) -> None:
        """Store a session under the hash of its token, until its ``expires_at``."""

    async def get_session(self, token_hash: str, now: datetime) -> UserSession | None:
        """The unexpired session of this token hash, else None."""

    async def touch_session(self, token_hash: str, session: UserSession, at: datetime) -> None:
        """Set the session's ``last_used_at``; it still expires at its ``expires_at``. A
        session ended meanwhile stays ended."""

    async def user_sessions(self, user_id: int, now: datetime, limit: int) -> list[UserSession]:
        """The user's unexpired sessions, newest first, at most ``limit``."""

    async def delete_session(self, user_id: int, session_id: int) -> bool:
        """End one of the user's sessions; False if the user has none of that id (another
        user's session included: it stays)."""

    async def delete_user_sessions(self, user_id: int, keep: int | None = None) -> None:
        """End every session of the user, all of them, but the one of id ``keep``."""


class PhotoStore(Protocol):
    """Photo records and the lists of them: a user's photo rows, soft delete and restore,
    each user's newest photo and live photo count."""

    async def save_photo(self, photo: Photo, terms: Sequence[str]) -> None:
        """Store the photo record, its user-photos row, one title-index row per term and
        its pack-queue entry; the record last (readers skip rows whose record is missing).
        The record is written once: ``Conflict`` if the id holds another photo (another
        owner or secret). Saving the same photo again changes nothing."""

    async def get_photo(self, photo_id: int) -> Photo | None:
        """The photo, deleted or not (``deleted_at`` tells), or None if it never was or
        has been purged."""

    async def get_photos(self, photo_ids: Sequence[int]) -> dict[int, Photo]:
        """The photos that exist among ``photo_ids``, fetched concurrently."""

    async def user_photo_ids(self, user_id: int, before: int | None, limit: int) -> list[int]:
        """Ids of the user's photos (deleted included), newest first, strictly before
        ``before`` when given."""

    async def set_deleted(self, photo: Photo, deleted_at: datetime | None) -> None:
        """Soft delete (``deleted_at`` set: the photo is queued for purge on that day)
        or restore (None: the queue entry goes). Only the deleted_at cell changes."""

    async def latest_photo_ids(self, user_ids: Sequence[int]) -> dict[int, int]:
        """Each user's newest photo id (deleted ones included) for those who have any.
        A hint for the timeline: it may name a photo deleted or purged since."""

    async def count_photos(self, user_id: int) -> PhotoCounts:
        """The user's live (not deleted) photos, and of them those whose visibility is
        followers or private."""


class PurgeQueue(Protocol):
    """The photos soft-deleted, by day, and their removal for good (``instastore purge``)."""

    async def due_purges(self, through: date, limit: int) -> list[PurgeEntry]:
        """Queue entries of photos deleted on days up to and including ``through``."""

    async def forget_purge(self, entry: PurgeEntry) -> None:
        """Drop a queue entry whose photo is gone already (or was restored)."""

    async def purge_photo(self, photo: Photo, terms: Sequence[str]) -> None:
        """Remove the record, its user-photos and title-index rows, its likes, its
        comments, its purge-queue and pack-queue entries for good. Purging what is already
        gone is a no-op."""


class PhotoScan(Protocol):
    """Every photo record, for the batch jobs that must read them all."""

    def scan_photos(self) -> AsyncIterator[Photo]:
        """Every photo record (deleted ones included), in no order, a page at a time
        (batch jobs only: gc gathers the blobs the records point at)."""


class PackQueue(Protocol):
    """The photos that may still have landed blobs: the packer's work list."""

    def pack_queue(self) -> AsyncIterator[int]:
        """Every photo id in the pack queue, oldest first, a page at a time. ``save_photo``
        queues each photo it saves (before its record, or in its transaction), so a record with
        landed blobs is always in it; ``unqueue_packed`` drops ids. Entries may be stale
        (the record packed or purged since): the packer reads each record and decides."""

    async def queue_for_packing(self, photo_ids: Sequence[int]) -> None:
        """Put photos in the pack queue (idempotent)."""

    async def unqueue_packed(self, photo_ids: Sequence[int]) -> None:
        """Drop photos from the pack queue (idempotent)."""


class LocatorSwitch(Protocol):
    """The one change a record's renditions take once saved: where their bytes are (the
    packer, compaction, an upload following its donor's bytes)."""

    async def switch_locators(
        self, photo_id: int, old: dict[str, str], new: dict[str, str]
    ) -> bool:
        """Point renditions of a photo at new locators (rendition name -> locator), only
        if the record exists, is not deleted, and its renditions named in ``old`` still
        have exactly those locators; atomically (a lightweight transaction on Cassandra,
        a transaction on SQLite). True if the record now has ``new`` (also when an
        earlier try already switched it: safe to settle), False if it was left alone.
        Both adapters decide with ``instastore.model.switch_outcome``."""


class VideoFinish(Protocol):
    """The change a transcode makes to a video's record: its "video" rendition, or why
    none could be made."""

    async def finish_video(
        self, photo_id: int, replaces: str | None, result: Rendition | str
    ) -> bool:
        """Set the photo's "video" rendition to ``result`` and its video ready, or, for a
        reason (a string), mark it failed; only if the record exists, is not deleted and
        its "video" rendition still has the locator ``replaces`` (None: it has none);
        atomically, as ``switch_locators``. A new rendition's photo is in the pack queue
        when this returns (its bytes are landed). True if the record now shows
        ``result`` (also after an earlier try), False if it was left alone. Both
        adapters decide with ``instastore.model.video_outcome``."""


class ContentIndex(Protocol):
    """Dedupe's hint: which photo last stored the bytes of a content hash."""

    async def content_donor(self, sha256: str) -> int | None:
        """The photo id last set as the donor of these bytes (see ``instastore.uploads``),
        or None. Only a hint: the caller checks the photo's record."""

    async def set_content_donor(self, sha256: str, photo_id: int) -> None:
        """Make ``photo_id`` the donor of these bytes (the last write wins). Idempotent."""


class PhotoPorts(
    PhotoStore,
    PurgeQueue,
    PhotoScan,
    PackQueue,
    LocatorSwitch,
    VideoFinish,
    ContentIndex,
    Protocol,
):
    """Every port of the photo aggregate, as ``Stores.photos`` holds them (one adapter
    serves them all); a service or job takes the ones it uses."""


class FollowGraph(Protocol):
    """Follows in both directions, their counts, and follow requests to private accounts."""

    async def follow(self, follower_id: int, followee_id: int, at: datetime) -> bool:
        """Record the follow in both directions; False if it already existed."""

    async def unfollow(self, follower_id: int, followee_id: int) -> bool:
        """Remove it in both directions; False if there was none."""

    async def is_following(self, follower_id: int, followee_id: int) -> bool: ...

    async def following(self, user_id: int, after: int | None, limit: int) -> list[int]:
        """Ids the user follows, ascending, strictly after ``after`` when given."""

    async def followers(self, user_id: int, after: int | None, limit: int) -> list[int]:
        """Ids following the user, ascending, strictly after ``after`` when given."""

    async def count_follows(self, user_id: int) -> tuple[int, int]:
        """(followers, following) of the user."""

    async def add_follow_request(self, user_id: int, requester_id: int, at: datetime) -> bool:
        """``requester_id`` asks to follow ``user_id``; False if already pending."""

    async def remove_follow_request(self, user_id: int, requester_id: int) -> bool:
        """Drop a pending request; False if there was none."""

    async def follow_requests(self, user_id: int, after: int | None, limit: int) -> list[int]:
        """Ids asking to follow ``user_id``, ascending, strictly after ``after``."""

    async def has_follow_request(self, user_id: int, requester_id: int) -> bool:
        """Whether ``requester_id`` has a pending request to follow ``user_id``."""

    async def follows_among(self, user_id: int, among: Sequence[int]) -> tuple[set[int], set[int]]:
        """(which of ``among`` follow ``user_id``, which of them ``user_id`` follows): two
        reads of the user's partitions (a viewer's blocks, left out of the counts)."""


class SearchIndex(Protocol):
    """The title index (its rows are written and removed with the photo's, by
    ``PhotoStore.save_photo`` and ``purge_photo``)."""

    async def search_terms(
        self, terms: Sequence[str], before: int | None, limit: int, budget: int
    ) -> TermHits:
        """Up to ``limit`` ids of photos whose indexed title has every one of ``terms``
        (already normalised), newest first, strictly before ``before`` when given, reading
        at most about ``budget`` postings (see ``TermHits``). The rarest term, as the
        index can tell cheaply, is walked (``instastore.search.walk_order``)."""


class LikeStore(Protocol):
    """Who liked which photo, and the counts."""

    async def like(self, photo_id: int, user_id: int, at: datetime) -> bool:
        """Record a like; False if the user already liked the photo (count unchanged)."""

    async def unlike(self, photo_id: int, user_id: int) -> bool:
        """Remove a like; False if there was none (count unchanged)."""

    async def like_counts(self, photo_ids: Sequence[int]) -> dict[int, int]:
        """Likes per photo; photos never liked count 0."""

    async def liked_by(self, user_id: int, photo_ids: Sequence[int]) -> set[int]:
        """Which of ``photo_ids`` the user likes: one read for them all (a page's worth)."""

    async def likers(self, photo_id: int, after: int | None, limit: int) -> list[int]:
        """Ids of the users who like the photo, ascending, strictly after ``after``."""

    async def like_counts_among(
        self, photo_ids: Sequence[int], user_ids: Sequence[int]
    ) -> dict[int, int]:
        """Likes of each of ``photo_ids`` by ``user_ids`` (a viewer's blocks, left out of
        the counts); photos none of them likes are left out: one read per photo."""


class CommentStore(Protocol):
    """Comments on photos, oldest first, and their count per photo. A photo's comments
    go with it when it is purged (``PurgeQueue.purge_photo``)."""

    async def add_comment(self, comment: Comment) -> bool:
        """Store a new comment (its id is new); False if that id holds it already (a
        retry after an unknown outcome: the count is not raised twice). ``Conflict`` if the
        id holds another comment."""

    async def get_comment(self, photo_id: int, comment_id: int) -> Comment | None: ...

    async def comments(self, photo_id: int, after: int | None, limit: int) -> list[Comment]:
        """The photo's comments, oldest first, strictly after the comment id ``after``."""

    async def delete_comment(self, comment: Comment) -> bool:
        """Remove the comment for good; False if it was gone already (count unchanged)."""

    async def comment_counts(self, photo_ids: Sequence[int]) -> dict[int, int]:
        """Comments per photo; photos never commented count 0."""

    async def comment_counts_among(
        self, photo_ids: Sequence[int], author_ids: Sequence[int]
    ) -> dict[int, int]:
        """Comments on each of ``photo_ids`` by ``author_ids`` (a viewer's blocks, left out
        of the counts); photos none of them commented on are left out."""


class IdempotencyStore(Protocol):
    """Claims of uploads' Idempotency-Keys (see ``instastore.uploads``)."""

    async def claim_idempotency_key(
        self, user_id: int, key: str, photo_id: int, now: datetime, expires_at: datetime
    ) -> KeyClaim:
        """Claim ``key`` for ``photo_id`` at ``now`` if nobody holds it, atomically; the
        claim that holds the key (this one when ``claim.photo_id == photo_id``). Claiming
        again for the same ``photo_id`` returns its claim (a retry after a timeout)."""

    async def take_over_idempotency_key(
        self,
        user_id: int,
        key: str,
        held: KeyClaim,
        photo_id: int,
        now: datetime,
        expires_at: datetime,
    ) -> bool:
        """Replace the claim ``held`` by a fresh one for ``photo_id`` (no intent), only if
        the key is still held exactly so (same photo_id and claimed_at); False if not."""

    async def renew_idempotency_key(
        self,
        user_id: int,
        key: str,
        photo_id: int,
        now: datetime,
        expires_at: datetime,
        intent: Photo | None = None,
    ) -> bool:
        """Only while ``photo_id`` holds the key: set its claimed_at to ``now`` (a
        heartbeat) and, given ``intent``, record the photo about to be saved. False if
        another attempt took the key over (this one is fenced). Idempotent."""

    async def release_idempotency_key(self, user_id: int, key: str, photo_id: int) -> None:
        """Free a key this photo claimed (the upload failed), so a retry can proceed."""


class TranscodeQueue(Protocol):
    """Videos waiting for their browser-safe rendition (``instastore.video.queue``). A job
    is held by one worker at a time under a lease it renews; a lease that lapses (its
    worker died) lets the next worker take the job, counting the attempt."""

    async def queue_transcode(self, job: TranscodeJob) -> None:
        """Add a job unless one for its photo is queued already (idempotent)."""

    async def transcode_jobs(self, after: int, limit: int) -> list[TranscodeJob]:
        """Queued jobs with photo ids past ``after``, lowest (oldest) first."""

    async def transcode_job(self, photo_id: int) -> TranscodeJob | None: ...

    async def claim_transcode(
        self, job: TranscodeJob, holder: str, until: datetime
    ) -> TranscodeJob | None:
        """Hold ``job`` for ``holder`` until ``until``, one more attempt, only if its
        attempts and lease are still as read in ``job`` (so of two workers one wins);
        the job as held, or None."""

    async def renew_transcode(self, photo_id: int, holder: str, until: datetime) -> bool:
        """Extend the lease while ``holder`` still holds the job; False if it does not."""

    async def forget_transcode(self, photo_id: int) -> None:
        """Remove the job (done, failed or moot). Idempotent."""


class KeyStore(Protocol):
    """Secrets shared by every process and server of a deployment."""

    async def server_key(self, name: str, candidate: bytes) -> bytes:
        """The secret stored under ``name``; ``candidate`` is stored first when there is
        none, atomically, so every process and server of a deployment gets the same bytes."""


class LeaseStore(Protocol):
    """Named leases, each held by one process at a time across every process and host of
    a deployment (worker numbers, the storage job lock: ``instastore.leases``), and hits
    against limits shared by all of them (``instastore.ratelimit``).

    A lease is held until ``ttl_s`` after its holder last took or renewed it; its
    ``high_ms`` (the last millisecond its holders may have put into an id) is kept after
    release and expiry. Holders are unique strings; every write names its holder, so a
    write tried again after an unknown outcome recognises its own earlier success."""

    async def take_lease(self, name: str, holder: str, ttl_s: int, now: datetime) -> LeaseState:
        """Hold ``name`` for ``holder`` unless another holder's lease is unexpired. The
        state after the attempt: ``holder`` is ours if taken (or held by us already)."""

    async def take_over_lease(
        self, name: str, dead: str, holder: str, ttl_s: int, now: datetime
    ) -> LeaseState:
        """Hold ``name`` for ``holder`` if ``dead`` still holds it (a holder known to be
        gone); the state after the attempt, as ``take_lease``."""

    async def renew_lease(
        self, name: str, holder: str, ttl_s: int, high_ms: int, now: datetime
    ) -> bool:
        """Extend our lease by ``ttl_s`` and raise its ``high_ms`` to ``high_ms``; False if
        it is not ours any more (expired, taken by another)."""

    async def release_lease(self, name: str, holder: str, high_ms: int) -> None:
        """Give up our lease (nothing if not ours), leaving ``high_ms`` as its mark."""

    async def read_lease(self, name: str) -> LeaseState | None:
        """Who holds ``name`` now (``holder`` None: nobody), or None if never taken."""

    async def add_limit_hit(self, key: str, minute: int) -> object:
        """Count one hit of ``key`` in ``minute`` (minutes since the Unix epoch); the hit,
        ordered among the others of its minute as they were written. Hits older than two
        minutes may be forgotten."""

    async def limit_hits(self, key: str, minute: int, through: object = None) -> int:
        """The hits of ``key`` in ``minute``; with ``through`` (a hit), those up to it."""

    async def remove_limit_hit(self, key: str, minute: int, hit: object) -> None:
        """Take back one hit (nothing if it is gone)."""


class InboxStore(Protocol):
    """The home timeline's inboxes (fan-out on write): each reader's row of followees'
    photo ids, each poster's fan-out mark, the queue of fan-outs not known to be done,
    and the backfills new follows owe. The save batch queues a photo's fan-out and the
    follow batch its backfill (``PhotoStore.save_photo``, ``FollowGraph.follow``)."""

    async def inbox_ids(
        self, reader_id: int, before: int | None, floor: int, limit: int
    ) -> list[int]:
        """At most ``limit`` photo ids of the reader's inbox strictly between ``floor`` and
        ``before`` (None: from the newest), newest first; expired rows never."""

    async def add_to_inboxes(self, entries: Sequence[InboxEntry]) -> None:
        """Write the rows (the same row twice is one row); each kept until its ``until``,
        those already past it not written."""

    async def latest_marks(self, user_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Each user's (newest photo id, fanned-to mark; 0: none), users without photos
        left out (``PhotoStore.latest_photo_ids`` and the mark in one read)."""

    async def mark_fanned(self, user_id: int, photo_id: int) -> None:
        """Every photo of the user up to ``photo_id`` is fanned out: the mark only ever
        goes up (a lower one written late changes nothing)."""

    async def pending_fanouts(self, owner_id: int) -> list[int]:
        """The owner's photo ids whose fan-out is queued, ascending."""

    async def queued_fanouts(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` queued fan-outs of any owner, as (owner id, photo id)."""

    async def forget_fanout(self, owner_id: int, photo_id: int) -> None:
        """Take a done fan-out off the queue (nothing if it is gone)."""

    async def inbox_backfills(self, reader_id: int) -> list[tuple[int, datetime]]:
        """The follows whose followee's recent photos the reader's inbox still lacks, as
        (followee id, the follow's time); unfollowing removes a pair's."""

    async def forget_backfill(self, reader_id: int, followee_id: int, since: datetime) -> None:
        """The backfill of the follow made at ``since`` is done (a later follow's stays)."""


class BlockStore(Protocol):
    """Blocks between accounts (``instastore.blocks``). Item ids are unique across users,
    photos and comments (one id generator makes them all)."""

    async def block(self, blocker_id: int, blocked_id: int, at: datetime) -> None:
        """Record the block, then end the follows between the two both ways (as
        ``FollowGraph.unfollow``, counts and backfills included) and their follow requests
        both ways. Idempotent: blocking again finishes a block cut short."""

    async def unblock(self, blocker_id: int, blocked_id: int) -> bool:
        """Remove the block (follows it ended stay ended); False if there was none."""

    async def blocked(self, user_id: int, after: int | None, limit: int) -> list[int]:
        """Ids the user blocks, ascending, strictly after ``after`` when given."""

    async def blockers_among(self, user_id: int, among: Sequence[int]) -> set[int]:
        """Which of ``among`` block ``user_id``: one read for them all (a page's owners)."""

    async def blocked_among(self, user_id: int, among: Sequence[int]) -> set[int]:
        """Which of ``among`` ``user_id`` blocks: one read for them all."""

    async def blockers(self, user_id: int, after: int | None, limit: int) -> list[int]:
        """Ids that block the user, ascending, strictly after ``after`` when given."""


class ModerationStore(Protocol):
    """Reports of photos, comments and accounts; the items operators hid; the content
    blocklist (``instastore.moderation``)."""

    async def add_report(self, report: Report) -> None:
        """File a report; the same reporter's report of the same item replaces theirs."""

    async def reports(self, after: ReportKey | None, limit: int) -> list[Report]:
        """Open reports in (kind, item id, reporter id) order, strictly after ``after``."""

    async def resolve_reports(self, kind: str, item_id: int) -> None:
        """Remove every open report of the item. Idempotent."""

    async def set_hidden(self, item_id: int, kind: str, at: datetime | None) -> None:
        """Hide the item (``at``: when), or show it again (None). Idempotent."""

    async def hidden_among(self, item_ids: Sequence[int]) -> dict[int, str]:
        """The hidden items among ``item_ids``, each with its kind: one read for them all."""

    async def add_to_blocklist(self, sha256: str, photo_id: int, at: datetime) -> None:
        """Refuse these bytes at upload from now on (``photo_id``: the takedown's photo)."""

    async def blocklisted(self, sha256: str) -> bool:
        """Whether bytes of this hash are refused."""


class ActivityStore(Protocol):
    """Each user's activity inbox: what happened to them (``instastore.activity``), newest
    first, each row kept until its ``until``; the ids of actions that have none of their
    own; how far the user has read. Rows are only added: the core filters at read time
    what the reader may no longer see."""

    async def claim_event_id(
        self, user_id: int, action: str, candidate: int, until: datetime
    ) -> int:
        """The event id of ``action`` (e.g. "like:<photo>:<actor>") in the user's inbox:
        ``candidate``, claimed until ``until``, if no unexpired claim holds one, else the
        id held (atomically: two claims at once agree). Claiming again with the same
        candidate answers it again (a retry after an unknown outcome)."""

    async def add_event(self, event: ActivityEvent, until: datetime) -> None:
        """Write the event's row (the same event twice is one row), kept until ``until``;
        one already past it is not written."""

    async def events(
        self, user_id: int, before: int | None, after: int, limit: int
    ) -> list[ActivityEvent]:
        """At most ``limit`` of the user's unexpired events with ids strictly between
        ``after`` (0: from the oldest) and ``before`` (None: from the newest), newest first."""

    async def seen_mark(self, user_id: int) -> int:
        """The id up to which the user has read their inbox (0: nothing read)."""

    async def mark_seen(self, user_id: int, event_id: int) -> None:
        """Raise the user's mark to ``event_id``: it only ever goes up (a lower one, written
        late, changes nothing)."""


class TagIndex(Protocol):
    """Hashtags (``instastore.tags``) and the index rows a title edit changes. Rows may be
    stale (a crash between steps, a concurrent edit): readers check each photo's record."""

    async def index_title(self, photo_id: int, terms: Sequence[str], tags: Sequence[str]) -> None:
        """Write the title-index rows of ``terms`` and the tag rows of ``tags`` for the
        photo, and remember that they were written (so ``unindex_title`` finds them).
        Idempotent; the record is not read or changed."""

    async def set_title(self, photo_id: int, title: str) -> Photo | None:
        """Set the live photo's title, nothing else of its record (a conditional write on
        the record read, as ``switch_locators``: a packer's switch is never undone); the
        photo after, or None if it is missing or deleted. Setting the title it has
        changes nothing."""

    async def unindex_title(self, photo_id: int, terms: Sequence[str], tags: Sequence[str]) -> None:
        """Remove every title-index and tag row of the photo that ``index_title`` (or an
        upload's tags) wrote, but those of ``terms`` and ``tags`` (an adapter that can
        find the photo's rows without that record, the embedded one, removes its upload's
        other title-index rows too). Idempotent."""

    async def tag_photo_ids(self, tag: str, before: int | None, limit: int) -> list[int]:
        """Ids of photos with rows under ``tag``, newest first, strictly before ``before``
        when given (stale ones included: the caller checks each record)."""

    async def tags_from(self, prefix: str, after: str | None, limit: int) -> list[str]:
        """Tags ever written that start with ``prefix`` (at least ``limits.TAG_PREFIX_CHARS``
        characters), in order, strictly after ``after`` when given. A tag may have no
        photo left: the caller checks."""


class MetadataStore(
    AccountStore,
    PhotoStore,
    PurgeQueue,
    PhotoScan,
    PackQueue,
    LocatorSwitch,
    VideoFinish,
    ContentIndex,
    FollowGraph,
    SearchIndex,
    LikeStore,
    InboxStore,
    CommentStore,
    IdempotencyStore,
    KeyStore,
    LeaseStore,
    TranscodeQueue,
    ActivityStore,
    BlockStore,
    ModerationStore,
    TagIndex,
    Backend,
    Protocol,
):
    """A metadata adapter: every metadata port over one connection (or session)."""


class BlobStore(Protocol):
    """Immutable byte blobs under keys that the core chooses (``a/b/c``, no leading
    slash). A key is written once: ``put`` of a key that exists is ``Conflict``."""

    name: str

    async def ping(self) -> None:
        """Return when the store answers and a write can succeed (readiness); raise
        ``Unavailable`` if not."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Stream the chunks into a new blob and return its size. Returns only once the
        bytes are durable. ``Conflict`` if the key exists; on failure no blob is left,
        and a crash mid-write never leaves part of one under the key (bytes go to a
        temporary name and are renamed into place whole)."""

    def open(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (all, when None) from ``offset`` in chunks, never the
        whole blob in memory. ``NotFound`` (raised on first iteration) if no such key."""

    async def size(self, key: str) -> int:
        """The blob's size in bytes; ``NotFound`` if no such key."""

    async def delete(self, key: str) -> bool:
        """Remove the blob, and its folders that it leaves empty; False if there was none."""

    def entries(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        """Every blob whose key starts with ``prefix`` (for gc), in no order, with its
        size and modification time. Blobs being written are not listed."""

    async def remove_empty_folders(self) -> int:
        """Remove folders no blob is left in (layout leftovers); return how many."""

    async def remove_abandoned_parts(self, now: datetime, grace: timedelta = SCRATCH_GRACE) -> int:
        """Remove temporary files of writes that provably ended without finishing (a
        crash), or whose writer has not renewed them for ``grace`` (a ``put`` renews its
        own while it writes): see ``instastore.storage.scratch``. Return how many."""


@dataclass(frozen=True)
class TermHits:
    """What one bounded read of the title index found.

    ``ids``: the matches, newest first. ``read``: the postings the read walked (each
    posting of the term it walks, in order; probes of the other terms are bounded by
    these). ``stopped_at``: None when the read ended because it had ``limit`` matches or
    the postings ran out (fewer than ``limit`` ids: there are no more); else the last
    posting it walked when its budget ran out: ``ids`` are then every match from there
    up to ``before``, and the next read goes on strictly before ``stopped_at``.
    ``counted``: index entries counted, besides, to tell which term is the rarest (at
    most ``instastore.search.RARITY_PROBE`` a term; none where the index tells it from
    rows it reads anyway)."""

    ids: list[int]
    read: int
    stopped_at: int | None = None
    counted: int = 0


@dataclass(frozen=True)
class InboxEntry:
    """One row of a reader's inbox: a followee's photo, kept until ``until``."""

    reader_id: int
    owner_id: int
    photo_id: int
    until: datetime


@dataclass(frozen=True)
class BlobEntry:
    key: str
    size: int  # bytes
    modified: datetime  # UTC; a blob is never rewritten, so this is when it was written


@dataclass(frozen=True)
class KeyClaim:
    """Who holds an Idempotency-Key: the photo id of the attempt, when it claimed or last
    renewed the key (None for claims older than schema 003), and the photo record it is
    about to save once its blobs are written (None before that)."""

    photo_id: int
    claimed_at: datetime | None
    intent: Photo | None = None


@dataclass(frozen=True)
class LeaseState:
    """A lease as stored: its holder (None: free) since when, and ``high_ms``, the last
    millisecond its holders may have put into an id (0: none)."""

    holder: str | None
    since: datetime | None
    high_ms: int


@dataclass(frozen=True)
class TranscodeJob:
    """A video waiting for its browser-safe rendition. ``replaces``: the locator of the
    "video" rendition the new one takes the place of (a stream copy stored before the
    transcode queue existed), None when the record has none. ``holder`` holds it while
    ``lease_until`` is ahead of the clock."""

    photo_id: int
    replaces: str | None
    queued_at: datetime
    attempts: int = 0
    holder: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class ActivityEvent:
    """One row of a user's activity inbox: ``actor_id`` did ``kind`` ("like", "comment",
    "mention", "follow", "request", "approved") to ``user_id``, about a photo and a
    comment where it has them (0: none). ``event_id`` is fixed by the action, so an action
    written twice is one row."""

    user_id: int
    event_id: int
    kind: str
    actor_id: int
    photo_id: int = 0
    comment_id: int = 0


@dataclass(frozen=True)
class PurgeEntry:
    day: date  # the day the photo was deleted
    photo_id: int


@dataclass
class Stores:
    """The ports, each under its aggregate's name, and the two adapters behind them:
    ``metadata`` (behind every metadata port) and ``blobs``. The core takes the
    ports it uses; only ``ping`` and ``close`` speak to the adapters as a whole."""

    accounts: AccountStore
    photos: PhotoPorts
    graph: FollowGraph
    search: SearchIndex
    likes: LikeStore
    inbox: InboxStore
    comments: CommentStore
    claims: IdempotencyStore
    keys: KeyStore
    leases: LeaseStore
    transcodes: TranscodeQueue
    activity: ActivityStore
    blobs: BlobStore
    metadata: Backend
    blocks: BlockStore
    moderation: ModerationStore
    tags: TagIndex

    @classmethod
    def over(cls, metadata: MetadataStore, blobs: BlobStore) -> Stores:
        """Every metadata port served by the one adapter ``metadata``."""
        return cls(
            accounts=metadata,
            photos=metadata,
            graph=metadata,
            search=metadata,
            likes=metadata,
            inbox=metadata,
            comments=metadata,
            claims=metadata,
            keys=metadata,
            leases=metadata,
            transcodes=metadata,
            activity=metadata,
            blobs=blobs,
            metadata=metadata,
            blocks=metadata,
            moderation=metadata,
            tags=metadata,
        )

    async def ping(self) -> dict[str, str]:
        """Ping both adapters; map each one's name to "ok" or the reason it is not."""
        from instastore.errors import InstastoreError

        report = {}
        for store in (self.metadata, self.blobs):
            try:
                await store.ping()
                report[store.name] = "ok"
            except InstastoreError as exc:
                report[store.name] = str(exc)
        return report

    async def close(self) -> None:
        try:
            await self.blobs.close()
        finally:
            await self.metadata.close()


ReportKey = tuple[str, int, int]  # (kind, item id, reporter id): a report's place in order


@dataclass(frozen=True)
class Report:
    """One account's report of a photo, a comment or an account (``kind``), with one of
    ``instastore.moderation.REASONS`` and optional words of the reporter's (``note``)."""

    kind: str
    item_id: int
    reporter_id: int
    reason: str
    note: str
    created_at: datetime

    @property
    def key(self) -> ReportKey:
        return (self.kind, self.item_id, self.reporter_id)
