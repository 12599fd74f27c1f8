"""Cassandra metadata store: one class serving every metadata port over one session.

The statements (``statements.py``, checked against ``schema/cql`` by a test) are
prepared once, at connect; reads and writes run at the configured
consistency (by default LOCAL_QUORUM above one replica; lightweight transactions at
LOCAL_SERIAL) through a
token-aware policy; a photo record and its index rows go in one logged batch. Wide rows
are bucketed by id time (``instastore.ids.bucket_of``); the ``*_buckets`` tables say
which buckets hold anything, so reads never scan empty ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from instastore import codec, ids, limits, search
from instastore.config import Settings
from instastore.errors import Conflict, OutcomeUnknown, StorageError, Unavailable
from instastore.ids import MAX_ID, bucket_of
from instastore.model import (
    Comment,
    Photo,
    PhotoCounts,
    Rendition,
    User,
    UserSession,
    Visibility,
    switch_outcome,
    video_outcome,
)
from instastore.storage.cassandra import migrate
from instastore.storage.cassandra import statements as cql
from instastore.storage.cassandra.session import (
    BATCH,
    MIN_TOKEN,
    build_cluster,
    execute,
    idempotent,
    translate_errors,
)
from instastore.storage.ports import (
    ActivityEvent,
    InboxEntry,
    KeyClaim,
    LeaseState,
    PurgeEntry,
    Report,
    ReportKey,
    TermHits,
    TranscodeJob,
    settle,
)

log = logging.getLogger(__name__)

PURGE_SHARDS = 16  # purge_queue partitions per day range; see schema/cql/001_initial.cql
BUCKETS_PER_READ = 32  # bucket rows read at a time when walking a user's or term's buckets
SEARCH_PAGE = 500  # postings of the first term read per step of a search
SCAN_PAGE = 500  # photo rows per token-range page of scan_photos
SWITCH_ROUNDS = 3  # reads + conditional writes of one locator switch before giving up
LATEST_CHUNK = 100  # partition keys per IN query for user_latest, chunks run concurrently
IN_CHUNK = 50  # photo ids per IN query of a page's records and counts (a page is 21-101)
FANOUT_SHARDS = 16  # fanout_queue partitions, by owner; see schema/cql/010_timeline_inbox.cql
INBOX_BATCH = 50  # inbox rows a request (~2 KB: under batch_size_warn_threshold, 5 KB)
INBOX_WRITES = 8  # such requests at once, by one add_to_inboxes
PACK_QUEUE_PAGE = 1000  # queued ids read per query
TAG_BATCH = 8  # terms or tags of a title edit per logged batch (~4 rows each: ~2 KB)
SESSIONS_PAGE = 100  # a user's sessions read, then ended concurrently, at a time
# Hits of one limit key read per minute: limits are tens a minute, and a hit past its limit
# is refused before it is written, so a count never nears this.
LIMIT_HITS_READ = 5_000  # one page of the driver
# A save can queue a photo in its bucket only within an Idempotency-Key's life of its id
# (an intent saved again); past that and an hour, a bucket read empty stays empty and its
# row in pack_queue_buckets can go without racing a save.
PACK_BUCKET_CLOSED_AFTER_MS = int(limits.ORPHAN_GRACE.total_seconds() * 1000)

StatementItem = tuple[str, tuple[object, ...]]  # a statement (its text) and its bind values


def _user(row: Any) -> User | None:
    if row is None:
        return None
    return User(
        id=row.user_id,
        username=row.username,
        password_hash=row.password_hash,
        display_name=row.display_name or "",
        private=bool(row.private),
        created_at=_utc(row.created_at),
    )


def _utc(at: datetime | None) -> datetime | None:
    """The driver returns naive UTC datetimes."""
    return None if at is None else at.replace(tzinfo=UTC)


def _to_ms(at: datetime) -> datetime:
    """``at`` as Cassandra stores a timestamp: whole milliseconds."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _cell_timestamp(photo_id: int) -> int:
    """Microseconds for USING TIMESTAMP: the photo's millisecond, then its sequence."""
    return ids.unix_ms_of(photo_id) * 1000 + (photo_id & ids.MAX_SEQUENCE) % 1000


def _ttl(now: datetime, expires_at: datetime) -> int:
    return max(1, int((expires_at - now).total_seconds()))


def _hidden(statement: str, photo: Photo) -> list[StatementItem]:
    """``statement`` (HIDE_PHOTO or UNHIDE_PHOTO) for a photo that only followers, or only
    its owner, may see; nothing for a public one."""
    if photo.visibility is Visibility.PUBLIC:
        return []
    return [(statement, (photo.owner_id, photo.visibility.value, photo.id))]


def _session(session_id: int, user_id: int, row: Any, now: datetime) -> UserSession:
    """A sessions or user_sessions row (its TTL last, in seconds) as a session."""
    created = _utc(row.created_at) or now
    return UserSession(
        id=session_id,
        user_id=user_id,
        created_at=created,
        last_used_at=_utc(row.last_used_at) or created,
        expires_at=now + timedelta(seconds=row[-1] or 0),
        address=row.address or "",
    )


def _name_prefix(username: str) -> str:
    """The usernames_by_prefix partition of a name (or of a prefix of one)."""
    return username[: limits.USERNAME_PREFIX_CHARS]


def _comment(photo_id: int, row: Any) -> Comment:
    at = _utc(row.created_at) or ids.created_at(row.comment_id)
    return Comment(row.comment_id, photo_id, row.author_id, row.text, at)


def _shard(photo_id: int) -> int:
    return photo_id % PURGE_SHARDS


def _pack_bucket(photo_id: int) -> int:
    return photo_id >> cql.PACK_BUCKET_SHIFT


def _pack_bucket_closed(bucket: int) -> bool:
    last_ms = ids.unix_ms_of(((bucket + 1) << cql.PACK_BUCKET_SHIFT) - 1)
    return ids.now_ms() - last_ms > PACK_BUCKET_CLOSED_AFTER_MS


class CassandraMetadataStore:
    name = "cassandra"

    def __init__(
        self,
        cluster: Cluster,
        session: Session,
        settings: Settings,
        prepared: dict[str, PreparedStatement],
    ) -> None:
        self.cluster = cluster
        self.session = session
        self.settings = settings
        self.q = prepared  # by CQL text: a constant of ``statements``
        self.names = {text: name for name, text in cql.statements().items()}

    @classmethod
    async def connect(cls, settings: Settings) -> CassandraMetadataStore:
        cluster = build_cluster(settings)
        try:
            with translate_errors("connect"):
                # Connecting blocks on the network (contact points, topology): off the loop.
                session = await asyncio.to_thread(cluster.connect)
            await asyncio.to_thread(_require_schema, session, settings)
            with translate_errors("preparing statements"):
                texts = list(cql.statements().values())
                keyspace = settings.cassandra_keyspace
                prepared = await asyncio.gather(
                    *(
                        asyncio.to_thread(session.prepare, cql.qualified(text, keyspace))
                        for text in texts
                    )
                )
        except BaseException:
            await asyncio.to_thread(cluster.shutdown)
            raise
        for text, statement in zip(texts, prepared, strict=True):
            statement.is_idempotent = idempotent(text)  # the driver may send it twice
        return cls(cluster, session, settings, dict(zip(texts, prepared, strict=True)))

    async def _q(
        self,
        statement: str,
        *params: object,
        what: str | None = None,
        profile: object = EXEC_PROFILE_DEFAULT,
    ) -> list[Any]:
        """Run one of ``statements`` (by its text), prepared; a batch job's read with
        ``profile=BATCH``."""
        what = what or self.names[statement]
        return await execute(self.session, self.q[statement], params, what=what, profile=profile)

    async def _batch(self, what: str, *items: StatementItem) -> None:
        """One logged batch of idempotent writes, tried again while its outcome is
        unknown: the same rows written twice are the same rows (so the driver may send it
        to two coordinators too)."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.is_idempotent = True
        for statement, params in items:
            batch.add(self.q[statement], params)
        await settle(what, lambda: execute(self.session, batch, None, what=what))

    async def _count(self, what: str, *items: StatementItem) -> None:
        """Counter updates after the change they count is stored. Never tried again (a
        counter update is not idempotent: a retry of one that did happen counts twice),
        and a failure is logged, not raised: the change itself stands, its count may be
        off by one."""
        batch = BatchStatement(batch_type=BatchType.COUNTER)
        for statement, params in items:
            batch.add(self.q[statement], params)
        try:
            await execute(self.session, batch, None, what=what)
        except StorageError as exc:
            log.warning("%s not counted (the count may be off by one): %s", what, exc)

    async def ping(self) -> None:
        await execute(self.session, cql.PING, what="ping")

    async def close(self) -> None:
        await asyncio.to_thread(self.cluster.shutdown)

    # ---- users --------------------------------------------------------------------

    async def create_user(self, user: User) -> None:
        # The users row first: if the name is taken it is removed again; if we crash in
        # between, an unreachable users row is left, never a name without a user. Both
        # writes are tried again while their outcome is unknown: a claim that did land
        # comes back as held by this user's id. The users row is removed only once the
        # name is known to be someone else's.
        (row,) = await settle(
            "create user",
            lambda: self._q(
                cql.INSERT_USER,
                user.id,
                user.username,
                user.password_hash,
                user.display_name,
                user.private,
                user.created_at,
            ),
        )
        if not row[0] and (row.username, row.password_hash) != (user.username, user.password_hash):
            raise Conflict(f"user id {user.id} holds another account already; nothing was stored")
        # Findable by prefix before the name is ours, so no crash leaves an account that
        # search misses; a row of an attempt that loses the name is skipped by readers.
        indexed = (_name_prefix(user.username), user.username, user.id)
        await settle("index username", lambda: self._q(cql.INDEX_USERNAME, *indexed))
        (row,) = await settle(
            "claim username", lambda: self._q(cql.CLAIM_NAME, user.username, user.id)
        )
        if not row[0]:
            if row.user_id == user.id:  # a retry of our own claim
                return
            try:
                await self._q(cql.DELETE_USER, user.id)
                await self._q(cql.UNINDEX_USERNAME, *indexed)
            except StorageError as exc:
                log.warning(
                    "could not remove the rows of user %d (unreachable, harmless): %s", user.id, exc
                )
            raise Conflict(f"username {user.username!r} is taken")

    async def update_user(self, user: User) -> None:
        await self._q(cql.UPDATE_USER, user.display_name, user.private, user.id)

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self._q(cql.SET_PASSWORD_HASH, password_hash, user_id)

    async def get_user(self, user_id: int) -> User | None:
        rows = await self._q(cql.GET_USER, user_id)
        return _user(rows[0] if rows else None)

    async def get_user_by_name(self, username: str) -> User | None:
        rows = await self._q(cql.USER_ID_BY_NAME, username)
        return await self.get_user(rows[0].user_id) if rows else None

    async def usernames_from(
        self, prefix: str, after: str | None, limit: int
    ) -> list[tuple[str, int]]:
        # "\x00" and "\x7f" bound the names that start with the prefix: neither is in any.
        start = prefix if after is None else after + "\x00"
        rows = await self._q(
            cql.USERNAMES_FROM, _name_prefix(prefix), start, prefix + "\x7f", limit
        )
        names: dict[str, list[int]] = {}
        for row in rows:
            names.setdefault(row.username, []).append(row.user_id)
        # Two ids under one name: an attempt that lost its claim left its row; the claim
        # decides.
        for name, owners in names.items():
            if len(owners) > 1:
                claimed = await self._q(cql.USER_ID_BY_NAME, name)
                names[name] = [o for o in owners if claimed and claimed[0].user_id == o]
        return [(name, user_id) for name, owners in names.items() for user_id in owners]

    # ---- photos -------------------------------------------------------------------

    async def save_photo(self, photo: Photo, terms: Sequence[str]) -> None:
        # Two steps, each safe to repeat. First the rows that point at the record (its
        # pack-queue entry, its user-photos row, its title-index rows) in one logged batch:
        # readers skip ids whose record is missing, so a crash here leaves nothing anyone
        # sees, and gc removes the blobs. Then the record, written once with a lightweight
        # transaction: an id holding another photo is a Conflict, never "saved already"
        # (our user-photos row is taken back unless the other photo is the same owner's;
        # title-index rows and user_latest stay, and readers check them against the
        # record: Photos.search, Photos.by_user);
        # a record found with our own secret is an earlier try of this save, and is never
        # written again: a packer may have switched it since.
        bucket = bucket_of(photo.id)
        items: list[StatementItem] = [
            (cql.QUEUE_PACK, (_pack_bucket(photo.id), photo.id)),
            (cql.QUEUE_PACK_BUCKET, (_pack_bucket(photo.id),)),
            (cql.INSERT_USER_PHOTO, (photo.owner_id, bucket, photo.id)),
            (cql.INSERT_USER_BUCKET, (photo.owner_id, bucket)),
            # Last write wins by the photo's own time: an older photo saved late never
            # hides a newer one.
            (cql.SET_LATEST, (photo.owner_id, photo.id, _cell_timestamp(photo.id))),
            # Its fan-out into followers' inboxes is owed until it is done.
            (cql.QUEUE_FANOUT, (photo.owner_id % FANOUT_SHARDS, photo.owner_id, photo.id)),
            *_hidden(cql.HIDE_PHOTO, photo),
        ]
        for term in terms:
            items += [
                (cql.INSERT_TERM, (term, bucket, photo.id)),
                (cql.INSERT_TERM_BUCKET, (term, bucket)),
            ]
        await self._batch("save_photo", *items)
        try:
            (row,) = await settle(
                "save photo record",
                lambda: self._q(cql.INSERT_PHOTO, photo.id, codec.encode_photo(photo)),
            )
        except OutcomeUnknown:
            raise  # the record may land yet: its hidden-photos row stays with it
        except StorageError:
            # No record, for sure: a hidden-photos row left would count for good (the
            # other index rows are skipped by readers, whose reads check the record).
            for statement, params in _hidden(cql.UNHIDE_PHOTO, photo):
                with contextlib.suppress(StorageError):
                    await self._q(statement, *params)
            raise
        if row[0]:  # counted once, by the try that wrote the record
            await self._count("photo count", (cql.ADD_PHOTOS, (1, photo.owner_id)))
            return
        saved = None if row.record is None else codec.decode_photo(row.record)
        if saved is not None and saved.same_upload(photo):
            return
        if saved is None or saved.owner_id != photo.owner_id:
            try:
                await self._q(cql.DELETE_USER_PHOTO, photo.owner_id, bucket, photo.id)
                for statement, params in _hidden(cql.UNHIDE_PHOTO, photo):
                    await self._q(statement, *params)
            except StorageError as exc:
                log.warning("user-photos row of %d left (readers skip it): %s", photo.id, exc)
        raise Conflict(f"photo id {photo.id} holds another photo already; nothing was saved")

    async def get_photo(self, photo_id: int) -> Photo | None:
        rows = await self._q(cql.GET_PHOTO, photo_id)
        if not rows or rows[0].record is None:
            return None
        return codec.decode_photo(rows[0].record, _utc(rows[0].deleted_at))

    async def scan_photos(self) -> AsyncIterator[Photo]:
        """A full scan in token order, one page per query (a batch job's read)."""
        after = MIN_TOKEN
        while True:
            rows = await self._q(cql.SCAN_PHOTOS, after, SCAN_PAGE, profile=BATCH)
            for row in rows:
                if row.record is not None:  # a deleted_at cell left without its record
                    yield codec.decode_photo(row.record, _utc(row.deleted_at))
            if len(rows) < SCAN_PAGE:
                return
            after = rows[-1].t

    async def get_photos(self, photo_ids: Sequence[int]) -> dict[int, Photo]:
        return {
            r.photo_id: codec.decode_photo(r.record, _utc(r.deleted_at))
            for r in await self._keyed(cql.GET_PHOTOS, photo_ids)
            if r.record is not None  # a deleted_at cell left without its record
        }

    async def _keyed(self, statement: str, keys: Sequence[int]) -> list[Any]:
        """The rows of ``statement`` (``... WHERE key IN ?``) for ``keys``, read IN_CHUNK
        keys a query, the queries at once."""
        unique = list(dict.fromkeys(keys))
        chunks = [unique[i : i + IN_CHUNK] for i in range(0, len(unique), IN_CHUNK)]
        results = await asyncio.gather(*(self._q(statement, chunk) for chunk in chunks))
        return [row for rows in results for row in rows]

    async def _buckets(self, statement: str, key: object, top: int) -> AsyncIterator[int]:
        """Non-empty buckets of a user or term, newest first, from ``top`` down."""
        while True:
            rows = await self._q(statement, key, top, BUCKETS_PER_READ)
            for row in rows:
                yield row.bucket
            if len(rows) < BUCKETS_PER_READ:
                return
            top = rows[-1].bucket - 1

    async def user_photo_ids(self, user_id: int, before: int | None, limit: int) -> list[int]:
        ids: list[int] = []
        top = bucket_of(MAX_ID)
        if before is not None:
            # The bucket of the cursor first, without asking which buckets exist: a page
            # usually ends inside it, and the timeline's cursors are followees' newest ids.
            ids = [
                r.photo_id
                for r in await self._q(cql.USER_PHOTOS, user_id, bucket_of(before), before, limit)
            ]
            if len(ids) >= limit:
                return ids
            top = bucket_of(before) - 1
        else:
            before = MAX_ID
        async for bucket in self._buckets(cql.USER_BUCKETS, user_id, top):
            rows = await self._q(cql.USER_PHOTOS, user_id, bucket, before, limit - len(ids))
            ids += [r.photo_id for r in rows]
            if len(ids) >= limit:
                break
        return ids

    async def set_deleted(self, photo: Photo, deleted_at: datetime | None) -> None:
        if deleted_at is not None:
            await self._batch(
                "soft delete",
                (cql.SET_DELETED, (deleted_at, photo.id)),
                (cql.ENQUEUE_PURGE, (_shard(photo.id), deleted_at.date(), photo.id)),
                *_hidden(cql.UNHIDE_PHOTO, photo),
            )
            if not photo.deleted:
                await self._count("photo count", (cql.ADD_PHOTOS, (-1, photo.owner_id)))
        else:
            items: list[StatementItem] = [
                (cql.SET_DELETED, (None, photo.id)),
                *_hidden(cql.HIDE_PHOTO, photo),
            ]
            if photo.deleted_at is not None:
                items.append(
                    (cql.DEQUEUE_PURGE, (_shard(photo.id), photo.deleted_at.date(), photo.id))
                )
            await self._batch("restore", *items)
            if photo.deleted:
                await self._count("photo count", (cql.ADD_PHOTOS, (1, photo.owner_id)))

    async def due_purges(self, through: date, limit: int) -> list[PurgeEntry]:
        shards = await asyncio.gather(
            *(
                self._q(cql.DUE_PURGES, s, through, limit, profile=BATCH)
                for s in range(PURGE_SHARDS)
            )
        )
        entries = [PurgeEntry(r.day.date(), r.photo_id) for rows in shards for r in rows]
        return sorted(entries, key=lambda e: (e.day, e.photo_id))[:limit]

    async def forget_purge(self, entry: PurgeEntry) -> None:
        await self._q(cql.DEQUEUE_PURGE, _shard(entry.photo_id), entry.day, entry.photo_id)

    async def purge_photo(self, photo: Photo, terms: Sequence[str]) -> None:
        # The rows an edit or the upload's tags remembered first: a purge cut short after
        # them is finished by the next run (the queue entry goes last).
        await self.unindex_title(photo.id, (), ())
        bucket = bucket_of(photo.id)
        items: list[StatementItem] = [
            (cql.DELETE_PHOTO, (photo.id,)),
            (cql.DELETE_USER_PHOTO, (photo.owner_id, bucket, photo.id)),
            (cql.DELETE_LIKES, (photo.id,)),
            *[(cql.DELETE_TERM, (term, bucket, photo.id)) for term in terms],
            (cql.UNQUEUE_PACK, (_pack_bucket(photo.id), photo.id)),
            *_hidden(cql.UNHIDE_PHOTO, photo),
        ]
        if photo.deleted_at is not None:
            items.append((cql.DEQUEUE_PURGE, (_shard(photo.id), photo.deleted_at.date(), photo.id)))
        await self._batch("purge", *items)
        # Counters cannot join a logged batch; deleting one is idempotent.
        await settle("purge like count", lambda: self._q(cql.DELETE_LIKE_COUNT, photo.id))
        await self._purge_comments(photo.id)

    async def _purge_comments(self, photo_id: int) -> None:
        """Every comment partition of the photo, then the rows naming them, then the count:
        each step idempotent, the buckets row last, so a purge cut off is finished by the
        next (the photo's queue entry stays until the record goes; readers of a purged
        photo's comments are stopped by its missing record)."""
        buckets = [b async for b in self._buckets_up(photo_id, 0)]
        for bucket in buckets:
            await settle(
                "purge comments",
                functools.partial(self._q, cql.DELETE_COMMENT_PARTITION, photo_id, bucket),
            )
        await settle("purge comment buckets", lambda: self._q(cql.DELETE_COMMENT_BUCKETS, photo_id))
        await settle("purge comment count", lambda: self._q(cql.DELETE_COMMENT_COUNT, photo_id))

    # ---- timeline inboxes ------------------------------------------------------------

    async def inbox_ids(
        self, reader_id: int, before: int | None, floor: int, limit: int
    ) -> list[int]:
        rows = await self._q(cql.INBOX, reader_id, before or MAX_ID, floor, limit)
        return [r.photo_id for r in rows]

    async def add_to_inboxes(self, entries: Sequence[InboxEntry]) -> None:
        now = datetime.now(UTC)
        live = [(e, int((e.until - now).total_seconds())) for e in entries]
        live = [(e, ttl) for e, ttl in live if ttl > 0]  # past its window: never written

        async def some(rows: list[tuple[InboxEntry, int]]) -> None:
            # An unlogged batch of rows of many partitions: one request, where a request a
            # row cost ~0.5 ms of client CPU each (a fan-out to 1,000 followers, half a
            # second). Plain inserts: written twice, the same rows.
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            batch.is_idempotent = True
            for e, ttl in rows:
                batch.add(self.q[cql.ADD_TO_INBOX], (e.reader_id, e.photo_id, e.owner_id, ttl))
            await settle("inbox rows", lambda: execute(self.session, batch, None, what="inbox"))

        batches = [live[i : i + INBOX_BATCH] for i in range(0, len(live), INBOX_BATCH)]
        for start in range(0, len(batches), INBOX_WRITES):
            await asyncio.gather(*(some(b) for b in batches[start : start + INBOX_WRITES]))

    async def latest_marks(self, user_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        chunks = [
            list(user_ids[i : i + LATEST_CHUNK]) for i in range(0, len(user_ids), LATEST_CHUNK)
        ]
        results = await asyncio.gather(*(self._q(cql.LATEST_MARKS, chunk) for chunk in chunks))
        return {
            r.user_id: (r.photo_id, r.fanned_to or 0)
            for rows in results
            for r in rows
            if r.photo_id is not None
        }

    async def mark_fanned(self, user_id: int, photo_id: int) -> None:
        await settle(
            "fan-out mark",
            lambda: self._q(cql.MARK_FANNED, _cell_timestamp(photo_id), photo_id, user_id),
        )

    async def pending_fanouts(self, owner_id: int) -> list[int]:
        rows = await self._q(cql.PENDING_FANOUTS, owner_id % FANOUT_SHARDS, owner_id)
        return [r.photo_id for r in rows]

    async def queued_fanouts(self, limit: int) -> list[tuple[int, int]]:
        shards = await asyncio.gather(
            *(self._q(cql.QUEUED_FANOUTS, s, limit, profile=BATCH) for s in range(FANOUT_SHARDS))
        )
        return sorted((r.owner_id, r.photo_id) for rows in shards for r in rows)[:limit]

    async def forget_fanout(self, owner_id: int, photo_id: int) -> None:
        await self._q(cql.FORGET_FANOUT, owner_id % FANOUT_SHARDS, owner_id, photo_id)

    async def inbox_backfills(self, reader_id: int) -> list[tuple[int, datetime]]:
        rows = await self._q(cql.BACKFILLS, reader_id)
        return [(r.followee_id, r.since.replace(tzinfo=UTC)) for r in rows]

    async def forget_backfill(self, reader_id: int, followee_id: int, since: datetime) -> None:
        await self._q(cql.FORGET_BACKFILL, reader_id, followee_id, since)

    # ---- follows ------------------------------------------------------------------

    async def follow(self, follower_id: int, followee_id: int, at: datetime) -> bool:
        if await self.is_following(follower_id, followee_id):
            return False
        await self._batch(
            "follow",
            (cql.INSERT_FOLLOW, (follower_id, followee_id, at)),
            (cql.INSERT_FOLLOWER, (followee_id, follower_id, at)),
            # The followee's recent photos are owed to the follower's inbox.
            (cql.ADD_BACKFILL, (follower_id, followee_id, at)),
        )
        await self._count(
            "follow counts",
            (cql.ADD_FOLLOWING, (1, follower_id)),
            (cql.ADD_FOLLOWERS, (1, followee_id)),
        )
        return True

    async def unfollow(self, follower_id: int, followee_id: int) -> bool:
        if not await self.is_following(follower_id, followee_id):
            return False
        await self._batch(
            "unfollow",
            (cql.DELETE_FOLLOW, (follower_id, followee_id)),
            (cql.DELETE_FOLLOWER, (followee_id, follower_id)),
            (cql.FORGET_BACKFILLS, (follower_id, followee_id)),
        )
        await self._count(
            "follow counts",
            (cql.ADD_FOLLOWING, (-1, follower_id)),
            (cql.ADD_FOLLOWERS, (-1, followee_id)),
        )
        return True

    async def is_following(self, follower_id: int, followee_id: int) -> bool:
        return bool(await self._q(cql.IS_FOLLOWING, follower_id, followee_id))

    async def following(self, user_id: int, after: int | None, limit: int) -> list[int]:
        return [r.followee_id for r in await self._q(cql.FOLLOWING, user_id, after or 0, limit)]

    async def followers(self, user_id: int, after: int | None, limit: int) -> list[int]:
        return [r.follower_id for r in await self._q(cql.FOLLOWERS, user_id, after or 0, limit)]

    async def count_follows(self, user_id: int) -> tuple[int, int]:
        rows = await self._q(cql.COUNT_FOLLOWS, user_id)
        if not rows:
            return (0, 0)
        return (rows[0].followers or 0, rows[0].following or 0)

    async def latest_photo_ids(self, user_ids: Sequence[int]) -> dict[int, int]:
        chunks = [
            list(user_ids[i : i + LATEST_CHUNK]) for i in range(0, len(user_ids), LATEST_CHUNK)
        ]
        results = await asyncio.gather(*(self._q(cql.LATEST, chunk) for chunk in chunks))
        return {r.user_id: r.photo_id for rows in results for r in rows}

    async def count_photos(self, user_id: int) -> PhotoCounts:
        live, hidden = await asyncio.gather(
            self._q(cql.COUNT_PHOTOS, user_id), self._q(cql.COUNT_HIDDEN, user_id)
        )
        kinds = {row.visibility: row.hidden for row in hidden}
        return PhotoCounts(
            max(0, live[0].photos or 0) if live else 0,
            kinds.get(Visibility.FOLLOWERS.value, 0),
            kinds.get(Visibility.PRIVATE.value, 0),
        )

    # ---- follow requests ------------------------------------------------------------

    async def add_follow_request(self, user_id: int, requester_id: int, at: datetime) -> bool:
        (row,) = await self._q(cql.ADD_REQUEST, user_id, requester_id, at)
        return bool(row[0])

    async def remove_follow_request(self, user_id: int, requester_id: int) -> bool:
        (row,) = await self._q(cql.REMOVE_REQUEST, user_id, requester_id)
        return bool(row[0])

    async def follow_requests(self, user_id: int, after: int | None, limit: int) -> list[int]:
        return [r.requester_id for r in await self._q(cql.REQUESTS, user_id, after or 0, limit)]

    async def has_follow_request(self, user_id: int, requester_id: int) -> bool:
        return bool(await self._q(cql.HAS_REQUEST, user_id, requester_id))

    # ---- sessions and idempotency -----------------------------------------------------

    async def create_session(self, token_hash: str, session: UserSession) -> None:
        ttl = _ttl(session.created_at, session.expires_at)
        row = (session.created_at, session.last_used_at, session.address)
        await self._batch(
            "create session",
            (cql.CREATE_SESSION, (token_hash, session.user_id, row[0], session.id, *row[1:], ttl)),
            (cql.INDEX_SESSION, (session.user_id, session.id, token_hash, *row, ttl)),
        )

    async def get_session(self, token_hash: str, now: datetime) -> UserSession | None:
        rows = await self._q(cql.GET_SESSION, token_hash)  # expiry is the row's TTL
        # No session id: a session made before sessions had ids (schema 009), or the cell
        # a touch racing its deletion wrote back: neither is a session.
        if not rows or rows[0].session_id is None or rows[0].user_id is None:
            return None
        row = rows[0]
        return _session(row.session_id, row.user_id, row, now)

    async def touch_session(self, token_hash: str, session: UserSession, at: datetime) -> None:
        ttl = _ttl(at, session.expires_at)  # the cell dies with the rest of its row
        await asyncio.gather(
            self._q(cql.TOUCH_SESSION, ttl, at, token_hash),
            self._q(cql.TOUCH_USER_SESSION, ttl, at, session.user_id, session.id),
        )

    async def user_sessions(self, user_id: int, now: datetime, limit: int) -> list[UserSession]:
        rows = await self._q(cql.USER_SESSIONS, user_id, MAX_ID, limit)
        return [_session(r.session_id, user_id, r, now) for r in rows if r.token_hash is not None]

    async def delete_session(self, user_id: int, session_id: int) -> bool:
        rows = await self._q(cql.USER_SESSION_TOKEN, user_id, session_id)
        if not rows:
            return False
        await self._end_session(user_id, session_id, rows[0].token_hash)
        return rows[0].token_hash is not None

    async def delete_user_sessions(self, user_id: int, keep: int | None = None) -> None:
        before = MAX_ID
        while True:
            rows = await self._q(cql.USER_SESSIONS, user_id, before, SESSIONS_PAGE)
            await asyncio.gather(
                *(
                    self._end_session(user_id, r.session_id, r.token_hash)
                    for r in rows
                    if r.session_id != keep
                )
            )
            if len(rows) < SESSIONS_PAGE:
                return
            before = rows[-1].session_id

    async def _end_session(self, user_id: int, session_id: int, token_hash: str | None) -> None:
        """The sessions row first (authentication reads it), then the user's row of it."""
        if token_hash is not None:
            await self._q(cql.DELETE_SESSION, token_hash)
        await self._q(cql.UNINDEX_SESSION, user_id, session_id)

    async def claim_idempotency_key(
        self, user_id: int, key: str, photo_id: int, now: datetime, expires_at: datetime
    ) -> KeyClaim:
        (row,) = await self._q(cql.CLAIM_KEY, user_id, key, photo_id, now, _ttl(now, expires_at))
        if row[0]:
            return KeyClaim(photo_id, _to_ms(now))
        intent = None if row.intent is None else codec.decode_photo(row.intent)
        return KeyClaim(row.photo_id, _utc(row.claimed_at), intent)

    async def take_over_idempotency_key(
        self,
        user_id: int,
        key: str,
        held: KeyClaim,
        photo_id: int,
        now: datetime,
        expires_at: datetime,
    ) -> bool:
        (row,) = await self._q(
            cql.TAKE_OVER_KEY,
            _ttl(now, expires_at),
            photo_id,
            now,
            user_id,
            key,
            held.photo_id,
            held.claimed_at,
        )
        return bool(row[0])

    async def renew_idempotency_key(
        self,
        user_id: int,
        key: str,
        photo_id: int,
        now: datetime,
        expires_at: datetime,
        intent: Photo | None = None,
    ) -> bool:
        ttl = _ttl(now, expires_at)
        if intent is None:
            (row,) = await self._q(cql.RENEW_KEY, ttl, photo_id, now, user_id, key, photo_id)
        else:
            record = codec.encode_photo(intent)
            (row,) = await self._q(
                cql.RENEW_KEY_INTENT, ttl, photo_id, now, record, user_id, key, photo_id
            )
        return bool(row[0])

    async def release_idempotency_key(self, user_id: int, key: str, photo_id: int) -> None:
        await self._q(cql.RELEASE_KEY, user_id, key, photo_id)

    # ---- deployment secrets --------------------------------------------------------

    async def server_key(self, name: str, candidate: bytes) -> bytes:
        # A lightweight transaction: of servers starting at once, one inserts and the
        # others read its value back in the same answer.
        (row,) = await self._q(cql.SERVER_KEY, name, candidate)
        return candidate if row[0] else bytes(row.secret)

    # ---- leases and shared limits ----------------------------------------------------

    async def _cas(self, what: str, *items: StatementItem) -> Any:
        """One conditional batch (a single partition), tried again while its outcome is
        unknown (each caller's condition recognises its own earlier success); its first
        row ([applied] and the condition's current values)."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        for statement, params in items:
            batch.add(self.q[statement], params)
        rows = await settle(what, lambda: execute(self.session, batch, None, what=what))
        return rows[0]

    async def take_lease(self, name: str, holder: str, ttl_s: int, now: datetime) -> LeaseState:
        return await self._take("take lease", (cql.TAKE_LEASE, (ttl_s, holder, name)), name, now)

    async def take_over_lease(
        self, name: str, dead: str, holder: str, ttl_s: int, now: datetime
    ) -> LeaseState:
        taking = (cql.RENEW_LEASE, (ttl_s, holder, name, dead))  # IF holder = <the dead one>
        return await self._take("take over lease", taking, name, now)

    async def _take(self, what: str, taking: StatementItem, name: str, now: datetime) -> LeaseState:
        """The conditional write of a holder (with when it took the lease), then the
        serial read that says who holds it: us, our own earlier try, or another."""
        await self._cas(what, taking, (cql.SET_LEASE_SINCE, (now, name)))
        state = await self.read_lease(name)
        return state if state is not None else LeaseState(None, None, 0)

    async def renew_lease(
        self, name: str, holder: str, ttl_s: int, high_ms: int, now: datetime
    ) -> bool:
        row = await self._cas(
            "renew lease",
            (cql.RENEW_LEASE, (ttl_s, holder, name, holder)),
            (cql.SET_LEASE_HIGH, (high_ms, name)),
        )
        return bool(row[0])

    async def release_lease(self, name: str, holder: str, high_ms: int) -> None:
        await self._cas(
            "release lease",
            (cql.RELEASE_LEASE, (name, holder)),
            (cql.SET_LEASE_HIGH, (high_ms, name)),
        )

    async def read_lease(self, name: str) -> LeaseState | None:
        # LOCAL_SERIAL: sees every lightweight transaction committed before it.
        bound = self.q[cql.READ_LEASE].bind((name,))
        bound.consistency_level = ConsistencyLevel.LOCAL_SERIAL
        rows = await execute(self.session, bound, None, what="read lease")
        if not rows:
            return None
        row = rows[0]
        since = _utc(row.since) if row.holder is not None else None
        return LeaseState(row.holder, since, row.high_ms or 0)

    async def add_limit_hit(self, key: str, minute: int) -> object:
        hit = uuid.uuid1()  # time-based: hits sort by when they were made
        await self._q(cql.ADD_LIMIT_HIT, key, minute, hit)
        return hit

    async def remove_limit_hit(self, key: str, minute: int, hit: object) -> None:
        await self._q(cql.REMOVE_LIMIT_HIT, key, minute, hit)

    async def limit_hits(self, key: str, minute: int, through: object = None) -> int:
        if through is None:
            rows = await self._q(cql.LIMIT_HITS, key, minute, LIMIT_HITS_READ)
        else:
            rows = await self._q(cql.LIMIT_HITS_THROUGH, key, minute, through, LIMIT_HITS_READ)
        return len(rows)

    # ---- search -------------------------------------------------------------------

    async def search_terms(
        self, terms: Sequence[str], before: int | None, limit: int, budget: int
    ) -> TermHits:
        if not terms:
            return TermHits([], 0)
        # Walk the rarest word's postings, probe the others. The rarest: the word in the
        # fewest time buckets (below the cursor), from the bucket lists read anyway to
        # find the buckets every word is in; of equals the longest.
        before = MAX_ID if before is None else before
        top = bucket_of(before)
        spread: dict[str, set[int]] = {}
        for term in set(terms):
            spread[term] = {b async for b in self._buckets(cql.TERM_BUCKETS, term, top)}
        first, *others = search.walk_order(terms, {t: len(b) for t, b in spread.items()})
        common = set.intersection(*spread.values())
        found: list[int] = []
        read = 0
        for bucket in sorted(common, reverse=True):
            cursor = before
            while True:
                size = min(SEARCH_PAGE, max(1, budget - read))
                page = [
                    r.photo_id
                    for r in await self._q(cql.TERM_POSTINGS, first, bucket, cursor, size)
                ]
                read += len(page)
                matches = set(page)
                for term in others:
                    if not matches:
                        break
                    rows = await self._q(cql.TERM_HAS, term, bucket, list(matches))
                    matches &= {r.photo_id for r in rows}
                found += sorted(matches, reverse=True)
                if len(found) >= limit:
                    return TermHits(found[:limit], read)
                if len(page) < size:
                    break
                cursor = page[-1]
                if read >= budget:
                    return TermHits(found, read, stopped_at=cursor)
        return TermHits(found, read)

    # ---- likes --------------------------------------------------------------------

    async def like(self, photo_id: int, user_id: int, at: datetime) -> bool:
        # Tried again while its outcome is unknown; one that landed then answers "liked
        # already", and the count stays one low (never counted twice).
        (row,) = await settle("like", lambda: self._q(cql.LIKE, photo_id, user_id, at))
        if not row[0]:
            return False
        await self._count("like count", (cql.ADD_LIKES, (1, photo_id)))
        return True

    async def unlike(self, photo_id: int, user_id: int) -> bool:
        # Not tried again on an unknown outcome: a retry of a removal that landed finds
        # nothing, so the caller's retry answers "no like" and the count stays one high.
        (row,) = await self._q(cql.UNLIKE, photo_id, user_id)
        if not row[0]:
            return False
        await self._count("like count", (cql.ADD_LIKES, (-1, photo_id)))
        return True

    async def like_counts(self, photo_ids: Sequence[int]) -> dict[int, int]:
        counted = {r.photo_id: r.likes or 0 for r in await self._keyed(cql.LIKE_COUNTS, photo_ids)}
        return {i: counted.get(i, 0) for i in photo_ids}

    async def liked_by(self, user_id: int, photo_ids: Sequence[int]) -> set[int]:
        chunks = [
            list(photo_ids[i : i + LATEST_CHUNK]) for i in range(0, len(photo_ids), LATEST_CHUNK)
        ]
        results = await asyncio.gather(*(self._q(cql.LIKED_BY, c, user_id) for c in chunks))
        return {r.photo_id for rows in results for r in rows}

    async def likers(self, photo_id: int, after: int | None, limit: int) -> list[int]:
        return [r.user_id for r in await self._q(cql.LIKERS, photo_id, after or 0, limit)]

    # ---- comments -----------------------------------------------------------------

    async def add_comment(self, comment: Comment) -> bool:
        bucket = bucket_of(comment.id)
        # The bucket first: a reader never misses a comment stored in it.
        await settle(
            "comment bucket", lambda: self._q(cql.ADD_COMMENT_BUCKET, comment.photo_id, bucket)
        )
        at = _to_ms(comment.created_at)
        # Tried again while its outcome is unknown; one that landed then answers "there
        # already", and the count stays one low (never counted twice), as likes do.
        (row,) = await settle(
            "comment",
            lambda: self._q(
                cql.ADD_COMMENT,
                comment.photo_id,
                bucket,
                comment.id,
                comment.author_id,
                comment.text,
                at,
            ),
        )
        if not row[0]:
            if (row.author_id, row.text) != (comment.author_id, comment.text):
                raise Conflict(f"comment id {comment.id} holds another comment; nothing was stored")
            return False
        await self._count("comment count", (cql.ADD_COMMENTS, (1, comment.photo_id)))
        return True

    async def get_comment(self, photo_id: int, comment_id: int) -> Comment | None:
        rows = await self._q(cql.GET_COMMENT, photo_id, bucket_of(comment_id), comment_id)
        return _comment(photo_id, rows[0]) if rows else None

    async def _buckets_up(self, photo_id: int, bottom: int) -> AsyncIterator[int]:
        """Buckets holding comments of the photo, oldest first, from ``bottom`` up."""
        while True:
            rows = await self._q(cql.COMMENT_BUCKETS, photo_id, bottom, BUCKETS_PER_READ)
            for row in rows:
                yield row.bucket
            if len(rows) < BUCKETS_PER_READ:
                return
            bottom = rows[-1].bucket + 1

    async def comments(self, photo_id: int, after: int | None, limit: int) -> list[Comment]:
        found: list[Comment] = []
        after = after or 0
        async for bucket in self._buckets_up(photo_id, bucket_of(after)):
            rows = await self._q(cql.COMMENTS, photo_id, bucket, after, limit - len(found))
            found += [_comment(photo_id, r) for r in rows]
            if len(found) >= limit:
                break
        return found

    async def delete_comment(self, comment: Comment) -> bool:
        # Not tried again on an unknown outcome (as unlike): a retry of a deletion that
        # landed finds nothing, and the count stays one high.
        (row,) = await self._q(
            cql.DELETE_COMMENT, comment.photo_id, bucket_of(comment.id), comment.id
        )
        if not row[0]:
            return False
        await self._count("comment count", (cql.ADD_COMMENTS, (-1, comment.photo_id)))
        return True

    async def comment_counts(self, photo_ids: Sequence[int]) -> dict[int, int]:
        rows = await self._keyed(cql.COMMENT_COUNTS, photo_ids)
        counted = {r.photo_id: max(0, r.comments or 0) for r in rows}
        return {i: counted.get(i, 0) for i in photo_ids}

    # ---- volumes (the packer) -----------------------------------------------------------

    async def switch_locators(
        self, photo_id: int, old: dict[str, str], new: dict[str, str]
    ) -> bool:
        # A lightweight transaction on the exact record bytes read (records are immutable
        # but for this switch), and on deleted_at still being null; a refusal means the
        # record changed since the read, so read it again and decide again.
        for _ in range(SWITCH_ROUNDS):
            rows = await self._q(cql.GET_PHOTO, photo_id)
            photo = None
            if rows and rows[0].record is not None:
                photo = codec.decode_photo(rows[0].record, _utc(rows[0].deleted_at))
            outcome = switch_outcome(photo, old, new)
            if isinstance(outcome, bool):
                return outcome
            record = codec.encode_photo(outcome)
            (row,) = await self._q(cql.SWITCH_LOCATORS, record, photo_id, rows[0].record)
            if row[0]:
                return True
        return False

    async def finish_video(
        self, photo_id: int, replaces: str | None, result: Rendition | str
    ) -> bool:
        # As switch_locators: a lightweight transaction on the exact record bytes read. A
        # new rendition's bytes are landed, so the photo is queued for packing before
        # (the packer may not drop it meanwhile: it is queued again after) and after.
        landed = isinstance(result, Rendition)
        if landed:
            await self.queue_for_packing([photo_id])
        for _ in range(SWITCH_ROUNDS):
            rows = await self._q(cql.GET_PHOTO, photo_id)
            photo = None
            if rows and rows[0].record is not None:
                photo = codec.decode_photo(rows[0].record, _utc(rows[0].deleted_at))
            outcome = video_outcome(photo, replaces, result)
            if isinstance(outcome, bool):
                if outcome and landed:
                    await self.queue_for_packing([photo_id])
                return outcome
            record = codec.encode_photo(outcome)
            (row,) = await self._q(cql.SWITCH_LOCATORS, record, photo_id, rows[0].record)
            if row[0]:
                if landed:
                    await self.queue_for_packing([photo_id])
                return True
        return False

    # ---- the transcode queue -------------------------------------------------------------

    async def queue_transcode(self, job: TranscodeJob) -> None:
        await settle(
            "queue transcode",
            lambda: self._q(cql.QUEUE_TRANSCODE, job.photo_id, job.replaces, job.queued_at),
        )

    async def transcode_jobs(self, after: int, limit: int) -> list[TranscodeJob]:
        rows = await self._q(cql.TRANSCODE_JOBS, after, limit)
        return [_job(r) for r in rows if r.attempts is not None]

    async def transcode_job(self, photo_id: int) -> TranscodeJob | None:
        rows = await self._q(cql.TRANSCODE_JOB, photo_id)
        return _job(rows[0]) if rows and rows[0].attempts is not None else None

    async def claim_transcode(
        self, job: TranscodeJob, holder: str, until: datetime
    ) -> TranscodeJob | None:
        until = _to_ms(until)  # as stored, so the next claim's condition matches it
        claimed = TranscodeJob(
            job.photo_id, job.replaces, job.queued_at, job.attempts + 1, holder, until
        )

        async def claim() -> bool:
            (row,) = await self._q(
                cql.CLAIM_TRANSCODE,
                holder,
                until,
                job.attempts + 1,
                job.photo_id,
                job.attempts,
                job.lease_until,
                job.holder,
            )
            # A try after an unknown outcome finds its own claim: the refusal shows the
            # holder and attempts it wrote (holders are unique).
            if row[0]:
                return True
            # (A refusal for a row that is gone carries no columns.)
            return bool(
                getattr(row, "holder", None) == holder
                and getattr(row, "attempts", None) == job.attempts + 1
            )

        return claimed if await settle("claim transcode", claim) else None

    async def renew_transcode(self, photo_id: int, holder: str, until: datetime) -> bool:
        at = _to_ms(until)
        (row,) = await settle(
            "renew transcode", lambda: self._q(cql.RENEW_TRANSCODE, at, photo_id, holder)
        )
        return bool(row[0])

    async def forget_transcode(self, photo_id: int) -> None:
        await settle("forget transcode", lambda: self._q(cql.FORGET_TRANSCODE, photo_id))

    async def pack_queue(self) -> AsyncIterator[int]:
        """Bucket by bucket, oldest first; a bucket read empty that no save can reach any
        more leaves the bucket list, so drained buckets are never read again."""
        after = -1  # buckets are >= 0
        while True:
            rows = await self._q(cql.PACK_QUEUE_BUCKETS, after, BUCKETS_PER_READ, profile=BATCH)
            for row in rows:
                empty = True
                async for photo_id in self._queued(row.bucket):
                    empty = False
                    yield photo_id
                if empty and _pack_bucket_closed(row.bucket):
                    await self._q(cql.UNQUEUE_PACK_BUCKET, row.bucket)
                    # a save (or a full scan's queueing) may have reached it meanwhile
                    async for _ in self._queued(row.bucket):
                        await self._q(cql.QUEUE_PACK_BUCKET, row.bucket)
                        break
            if len(rows) < BUCKETS_PER_READ:
                return
            after = rows[-1].bucket

    async def _queued(self, bucket: int) -> AsyncIterator[int]:
        after = -1
        while True:
            rows = await self._q(cql.PACK_QUEUE, bucket, after, PACK_QUEUE_PAGE, profile=BATCH)
            for row in rows:
                yield row.photo_id
            if len(rows) < PACK_QUEUE_PAGE:
                return
            after = rows[-1].photo_id

    async def queue_for_packing(self, photo_ids: Sequence[int]) -> None:
        async def one(photo_id: int) -> None:
            await self._batch(
                "queue for packing",
                (cql.QUEUE_PACK, (_pack_bucket(photo_id), photo_id)),
                (cql.QUEUE_PACK_BUCKET, (_pack_bucket(photo_id),)),
            )

        for start in range(0, len(photo_ids), PACK_QUEUE_PAGE):
            await asyncio.gather(*(one(i) for i in photo_ids[start : start + PACK_QUEUE_PAGE]))

    async def unqueue_packed(self, photo_ids: Sequence[int]) -> None:
        async def one(photo_id: int) -> None:
            await settle(
                "unqueue packed",
                lambda: self._q(cql.UNQUEUE_PACK, _pack_bucket(photo_id), photo_id),
            )

        for start in range(0, len(photo_ids), PACK_QUEUE_PAGE):
            await asyncio.gather(*(one(i) for i in photo_ids[start : start + PACK_QUEUE_PAGE]))

    # ---- content dedupe ------------------------------------------------------------------

    async def content_donor(self, sha256: str) -> int | None:
        rows = await self._q(cql.CONTENT_DONOR, sha256)
        return None if not rows else int(rows[0].photo_id)

    async def set_content_donor(self, sha256: str, photo_id: int) -> None:
        await settle("set content donor", lambda: self._q(cql.SET_CONTENT_DONOR, sha256, photo_id))

    # ---- blocks ---------------------------------------------------------------------

    async def block(self, blocker_id: int, blocked_id: int, at: datetime) -> None:
        # The block first: from here no visibility check lets the blocked see the
        # blocker, whatever of the rest a crash cuts short (blocking again finishes it).
        await self._batch(
            "block",
            (cql.BLOCK, (blocker_id, blocked_id, at)),
            (cql.INDEX_BLOCKER, (blocked_id, blocker_id)),
        )
        await self.unfollow(blocker_id, blocked_id)
        await self.unfollow(blocked_id, blocker_id)
        await self.remove_follow_request(blocker_id, blocked_id)
        await self.remove_follow_request(blocked_id, blocker_id)

    async def unblock(self, blocker_id: int, blocked_id: int) -> bool:
        if not await self._q(cql.IS_BLOCKING, blocker_id, blocked_id):
            return False
        await self._batch(
            "unblock",
            (cql.UNBLOCK, (blocker_id, blocked_id)),
            (cql.UNINDEX_BLOCKER, (blocked_id, blocker_id)),
        )
        return True

    async def blocked(self, user_id: int, after: int | None, limit: int) -> list[int]:
        return [r.blocked_id for r in await self._q(cql.BLOCKED, user_id, after or 0, limit)]

    async def blockers_among(self, user_id: int, among: Sequence[int]) -> set[int]:
        among = sorted(set(among))
        if not among:
            return set()
        return {r.blocker_id for r in await self._q(cql.BLOCKERS_AMONG, user_id, among)}

    async def blocked_among(self, user_id: int, among: Sequence[int]) -> set[int]:
        among = sorted(set(among))
        if not among:
            return set()
        return {r.blocked_id for r in await self._q(cql.BLOCKED_AMONG, user_id, among)}

    # ---- reports, hidden items, the content blocklist ------------------------------

    async def add_report(self, report: Report) -> None:
        await settle(
            "add report",
            lambda: self._q(
                cql.ADD_REPORT, *report.key, report.reason, report.note, report.created_at
            ),
        )

    async def reports(self, after: ReportKey | None, limit: int) -> list[Report]:
        rows = await self._q(cql.REPORTS, *(after or ("", 0, 0)), limit)
        return [
            Report(
                r.kind,
                r.item_id,
                r.reporter_id,
                r.reason,
                r.note,
                _utc(r.created_at) or datetime.fromtimestamp(0, UTC),
            )
            for r in rows
        ]

    async def resolve_reports(self, kind: str, item_id: int) -> None:
        await settle("resolve reports", lambda: self._q(cql.RESOLVE_REPORTS, kind, item_id))

    async def set_hidden(self, item_id: int, kind: str, at: datetime | None) -> None:
        if at is None:
            await settle("show item", lambda: self._q(cql.SHOW_ITEM, item_id))
        else:
            await settle("hide item", lambda: self._q(cql.HIDE_ITEM, item_id, kind, at))

    async def hidden_among(self, item_ids: Sequence[int]) -> dict[int, str]:
        ids = sorted(set(item_ids))
        if not ids:
            return {}
        return {r.item_id: r.kind for r in await self._q(cql.HIDDEN_AMONG, ids)}

    async def add_to_blocklist(self, sha256: str, photo_id: int, at: datetime) -> None:
        await settle(
            "add to blocklist", lambda: self._q(cql.ADD_TO_BLOCKLIST, sha256, photo_id, at)
        )

    async def blocklisted(self, sha256: str) -> bool:
        return bool(await self._q(cql.BLOCKLISTED, sha256))

    # ---- activity inboxes ------------------------------------------------------------

    async def claim_event_id(
        self, user_id: int, action: str, candidate: int, until: datetime
    ) -> int:
        ttl = _ttl(datetime.now(UTC), until)
        # Tried again while unknown: a claim of ours that landed comes back as the held
        # row, with our candidate in it.
        (row,) = await settle(
            "claim event id", lambda: self._q(cql.CLAIM_EVENT, user_id, action, candidate, ttl)
        )
        return candidate if row[0] else int(row.event_id)

    async def add_event(self, event: ActivityEvent, until: datetime) -> None:
        ttl = int((until - datetime.now(UTC)).total_seconds())
        if ttl <= 0:
            return  # past its window: never written
        row = (
            event.user_id,
            event.event_id,
            event.kind,
            event.actor_id,
            event.photo_id,
            event.comment_id,
            ttl,
        )
        await settle("activity event", lambda: self._q(cql.ADD_EVENT, *row))

    async def events(
        self, user_id: int, before: int | None, after: int, limit: int
    ) -> list[ActivityEvent]:
        top = MAX_ID if before is None else before
        rows = await self._q(cql.EVENTS, user_id, top, after, limit)
        return [
            ActivityEvent(user_id, r.event_id, r.kind, r.actor_id, r.photo_id, r.comment_id)
            for r in rows
        ]

    async def seen_mark(self, user_id: int) -> int:
        rows = await self._q(cql.SEEN_MARK, user_id)
        return int(rows[0].seen_id or 0) if rows else 0

    async def mark_seen(self, user_id: int, event_id: int) -> None:
        await settle(
            "activity read mark",
            lambda: self._q(cql.MARK_SEEN, _cell_timestamp(event_id), event_id, user_id),
        )

    # ---- tags and title edits ----------------------------------------------------------

    def _index_rows(self, photo_id: int, kind: str, value: str) -> list[StatementItem]:
        """The rows of one term or tag of a photo, with the photo_index row naming them."""
        bucket = bucket_of(photo_id)
        if kind == "term":
            rows = [
                (cql.INSERT_TERM, (value, bucket, photo_id)),
                (cql.INSERT_TERM_BUCKET, (value, bucket)),
            ]
        else:
            rows = [
                (cql.INSERT_TAG, (value, bucket, photo_id)),
                (cql.INSERT_TAG_BUCKET, (value, bucket)),
                (cql.INDEX_TAG_NAME, (value[: limits.TAG_PREFIX_CHARS], value)),
            ]
        return [(cql.REMEMBER_INDEXED, (photo_id, kind, value)), *rows]

    async def index_title(self, photo_id: int, terms: Sequence[str], tags: Sequence[str]) -> None:
        # Each term's or tag's rows in one logged batch with the photo_index row that
        # names them (so unindex_title finds every row written), TAG_BATCH of them a batch.
        rows = [
            self._index_rows(photo_id, kind, value)
            for kind, values in (("term", terms), ("tag", tags))
            for value in values
        ]
        chunks = [rows[i : i + TAG_BATCH] for i in range(0, len(rows), TAG_BATCH)]
        await asyncio.gather(
            *(self._batch("index title", *[r for one in chunk for r in one]) for chunk in chunks)
        )

    async def set_title(self, photo_id: int, title: str) -> Photo | None:
        # As switch_locators: a lightweight transaction on the exact record bytes read,
        # and on deleted_at still being null; a refusal means the record changed since
        # the read (a packer's switch, another edit), so read it again.
        for _ in range(SWITCH_ROUNDS):
            rows = await self._q(cql.GET_PHOTO, photo_id)
            if not rows or rows[0].record is None or rows[0].deleted_at is not None:
                return None
            photo = codec.decode_photo(rows[0].record)
            if photo.title == title:
                return photo
            edited = dataclasses.replace(photo, title=title)
            (row,) = await self._q(
                cql.SWITCH_LOCATORS, codec.encode_photo(edited), photo_id, rows[0].record
            )
            if row[0]:
                return edited
        raise Unavailable(f"the record of photo {photo_id} is changing too fast; try again")

    async def unindex_title(self, photo_id: int, terms: Sequence[str], tags: Sequence[str]) -> None:
        keep = {("term", t) for t in terms} | {("tag", t) for t in tags}
        bucket = bucket_of(photo_id)
        gone = [
            (r.kind, r.value)
            for r in await self._q(cql.INDEXED, photo_id)
            if (r.kind, r.value) not in keep
        ]
        # The index row and the photo_index row naming it go together: a removal cut
        # short leaves both, and the next one (an edit, a retry, a purge) finds them.
        removals: list[list[StatementItem]] = [
            [
                (cql.DELETE_TERM if kind == "term" else cql.DELETE_TAG, (value, bucket, photo_id)),
                (cql.FORGET_INDEXED, (photo_id, kind, value)),
            ]
            for kind, value in gone
        ]
        chunks = [removals[i : i + TAG_BATCH] for i in range(0, len(removals), TAG_BATCH)]
        await asyncio.gather(
            *(self._batch("unindex title", *[r for one in chunk for r in one]) for chunk in chunks)
        )

    async def tag_photo_ids(self, tag: str, before: int | None, limit: int) -> list[int]:
        found: list[int] = []
        before = MAX_ID if before is None else before
        async for bucket in self._buckets(cql.TAG_BUCKETS, tag, bucket_of(before)):
            rows = await self._q(cql.TAG_PHOTOS, tag, bucket, before, limit - len(found))
            found += [r.photo_id for r in rows]
            if len(found) >= limit:
                break
        return found

    async def tags_from(self, prefix: str, after: str | None, limit: int) -> list[str]:
        # "\x00" follows ``after`` at once; U+10FFFF follows every letter or digit.
        start = prefix if after is None else after + "\x00"
        rows = await self._q(
            cql.TAGS_FROM,
            prefix[: limits.TAG_PREFIX_CHARS],
            start,
            prefix + "\U0010ffff",
            limit,
        )
        return [r.tag for r in rows]

    # ---- counts as a viewer sees them (a viewer's blocks left out) -------------------

    async def blockers(self, user_id: int, after: int | None, limit: int) -> list[int]:
        return [r.blocker_id for r in await self._q(cql.BLOCKERS, user_id, after or 0, limit)]

    async def _among(self, statement: str, key: int, among: Sequence[int]) -> list[Any]:
        """The rows of ``statement`` (``WHERE key = ? AND column IN ?``), IN_CHUNK of
        ``among`` a query, the queries at once."""
        unique = sorted(set(among))
        chunks = [unique[i : i + IN_CHUNK] for i in range(0, len(unique), IN_CHUNK)]
        results = await asyncio.gather(*(self._q(statement, key, chunk) for chunk in chunks))
        return [row for rows in results for row in rows]

    async def follows_among(self, user_id: int, among: Sequence[int]) -> tuple[set[int], set[int]]:
        followers, following = await asyncio.gather(
            self._among(cql.FOLLOWERS_AMONG, user_id, among),
            self._among(cql.FOLLOWING_AMONG, user_id, among),
        )
        return {r.follower_id for r in followers}, {r.followee_id for r in following}

    async def like_counts_among(
        self, photo_ids: Sequence[int], user_ids: Sequence[int]
    ) -> dict[int, int]:
        async def likes(photo_id: int) -> int:
            return len(await self._among(cql.LIKERS_AMONG, photo_id, user_ids))

        return await self._per_photo(photo_ids, user_ids, likes)

    async def comment_counts_among(
        self, photo_ids: Sequence[int], author_ids: Sequence[int]
    ) -> dict[int, int]:
        return await self._per_photo(
            photo_ids, author_ids, lambda photo_id: self._comments_by(photo_id, author_ids)
        )

    async def _per_photo(
        self,
        photo_ids: Sequence[int],
        among: Sequence[int],
        count: Callable[[int], Awaitable[int]],
    ) -> dict[int, int]:
        """``count`` of each photo (the photos at once), those counted 0 left out."""
        if not among:
            return {}
        unique = list(dict.fromkeys(photo_ids))
        counted = await asyncio.gather(*(count(p) for p in unique))
        return {p: n for p, n in zip(unique, counted, strict=True) if n}

    async def _comments_by(self, photo_id: int, author_ids: Sequence[int]) -> int:
        """The photo's comments by ``author_ids``: for each author, one read of the
        photo's bucket partitions filtered by author (see ``COMMENTS_BY_AMONG``)."""
        buckets = [b async for b in self._buckets_up(photo_id, 0)]
        if not buckets:
            return 0
        found = await asyncio.gather(
            *(self._q(cql.COMMENTS_BY_AMONG, photo_id, buckets, a) for a in set(author_ids))
        )
        return sum(len(rows) for rows in found)


def _require_schema(session: Session, settings: Settings) -> None:
    missing = migrate.pending(session, settings)
    if missing:
        raise Unavailable(
            f"keyspace {settings.cassandra_keyspace!r} lacks schema {', '.join(missing)}; "
            "run `instastore migrate`"
        )


def _job(row: Any) -> TranscodeJob:
    return TranscodeJob(
        photo_id=row.photo_id,
        replaces=row.replaces,
        queued_at=_utc(row.queued_at) or datetime.fromtimestamp(0, UTC),
        attempts=row.attempts,
        holder=row.holder,
        lease_until=_utc(row.lease_until),
    )
