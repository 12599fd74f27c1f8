"""Cassandra metadata store.

Statements are prepared once, at connect; reads and writes run at the configured
consistency (by default LOCAL_QUORUM above one replica; lightweight transactions at
LOCAL_SERIAL) through a
token-aware policy; a photo record and its index rows go in one logged batch. Wide rows
are bucketed by id time (``instastore.ids.bucket_of``); the ``*_buckets`` tables say
which buckets hold anything, so reads never scan empty ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime

from cassandra import ConsistencyLevel, ProtocolVersion
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from instastore import codec, ids
from instastore.config import Settings
from instastore.errors import Conflict, StorageError, Unavailable
from instastore.ids import MAX_ID, bucket_of
from instastore.model import Photo, User
from instastore.storage.cassandra import migrate
from instastore.storage.cassandra.session import execute, translate_errors
from instastore.storage.ports import KeyClaim, PurgeEntry, settle

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 12.0  # above Cassandra's own 5 s read/write timeouts, so theirs fire first
PURGE_SHARDS = 16  # purge_queue partitions per day range; see schema/cql/001_initial.cql
BUCKETS_PER_READ = 32  # bucket rows read at a time when walking a user's or term's buckets
SEARCH_PAGE = 500  # postings of the first term read per step of a search
RECONNECT_MAX_S = 10.0
SCAN_PAGE = 500  # photo rows per token-range page of scan_photos
MIN_TOKEN = -(2**63)  # Murmur3Partitioner: no key has this token, every key is above it

STATEMENTS = {
    "insert_user": (
        "INSERT INTO users (user_id, username, password_hash, display_name, private, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    ),
    "claim_name": "INSERT INTO users_by_name (username, user_id) VALUES (?, ?) IF NOT EXISTS",
    "delete_user": "DELETE FROM users WHERE user_id = ?",
    "update_user": (
        "UPDATE users SET password_hash = ?, display_name = ?, private = ? WHERE user_id = ?"
    ),
    "get_user": (
        "SELECT user_id, username, password_hash, display_name, private, created_at FROM users "
        "WHERE user_id = ?"
    ),
    "user_id_by_name": "SELECT user_id FROM users_by_name WHERE username = ?",
    "insert_photo": "INSERT INTO photos (photo_id, record) VALUES (?, ?)",
    "insert_user_photo": "INSERT INTO user_photos (user_id, bucket, photo_id) VALUES (?, ?, ?)",
    "insert_user_bucket": "INSERT INTO user_photo_buckets (user_id, bucket) VALUES (?, ?)",
    "insert_term": "INSERT INTO title_terms (term, bucket, photo_id) VALUES (?, ?, ?)",
    "insert_term_bucket": "INSERT INTO term_buckets (term, bucket) VALUES (?, ?)",
    "get_photo": "SELECT record, deleted_at FROM photos WHERE photo_id = ?",
    "scan_photos": (
        "SELECT token(photo_id) AS t, record, deleted_at FROM photos WHERE token(photo_id) > ? "
        "LIMIT ?"
    ),
    "user_buckets": (
        "SELECT bucket FROM user_photo_buckets WHERE user_id = ? AND bucket <= ? LIMIT ?"
    ),
    "user_photos": (
        "SELECT photo_id FROM user_photos WHERE user_id = ? AND bucket = ? AND photo_id < ? LIMIT ?"
    ),
    "set_deleted": "UPDATE photos SET deleted_at = ? WHERE photo_id = ?",
    "enqueue_purge": "INSERT INTO purge_queue (shard, day, photo_id) VALUES (?, ?, ?)",
    "dequeue_purge": "DELETE FROM purge_queue WHERE shard = ? AND day = ? AND photo_id = ?",
    "due_purges": "SELECT day, photo_id FROM purge_queue WHERE shard = ? AND day <= ? LIMIT ?",
    "delete_photo": "DELETE FROM photos WHERE photo_id = ?",
    "delete_user_photo": (
        "DELETE FROM user_photos WHERE user_id = ? AND bucket = ? AND photo_id = ?"
    ),
    "delete_term": "DELETE FROM title_terms WHERE term = ? AND bucket = ? AND photo_id = ?",
    "delete_likes": "DELETE FROM likes WHERE photo_id = ?",
    "delete_like_count": "DELETE FROM like_counts WHERE photo_id = ?",
    "insert_follow": "INSERT INTO user_follows (user_id, followee_id, created_at) VALUES (?, ?, ?)",
    "insert_follower": (
        "INSERT INTO user_followers (user_id, follower_id, created_at) VALUES (?, ?, ?)"
    ),
    "delete_follow": "DELETE FROM user_follows WHERE user_id = ? AND followee_id = ?",
    "delete_follower": "DELETE FROM user_followers WHERE user_id = ? AND follower_id = ?",
    "is_following": "SELECT followee_id FROM user_follows WHERE user_id = ? AND followee_id = ?",
    "following": (
        "SELECT followee_id FROM user_follows WHERE user_id = ? AND followee_id > ? LIMIT ?"
    ),
    "followers": (
        "SELECT follower_id FROM user_followers WHERE user_id = ? AND follower_id > ? LIMIT ?"
    ),
    "count_follows": "SELECT followers, following FROM follow_counts WHERE user_id = ?",
    "add_followers": "UPDATE follow_counts SET followers = followers + ? WHERE user_id = ?",
    "add_following": "UPDATE follow_counts SET following = following + ? WHERE user_id = ?",
    "term_buckets": "SELECT bucket FROM term_buckets WHERE term = ? AND bucket <= ? LIMIT ?",
    "term_postings": (
        "SELECT photo_id FROM title_terms WHERE term = ? AND bucket = ? AND photo_id < ? LIMIT ?"
    ),
    "term_has": "SELECT photo_id FROM title_terms WHERE term = ? AND bucket = ? AND photo_id IN ?",
    "like": "INSERT INTO likes (photo_id, user_id, created_at) VALUES (?, ?, ?) IF NOT EXISTS",
    "unlike": "DELETE FROM likes WHERE photo_id = ? AND user_id = ? IF EXISTS",
    "add_likes": "UPDATE like_counts SET likes = likes + ? WHERE photo_id = ?",
    "like_count": "SELECT likes FROM like_counts WHERE photo_id = ?",
    "set_latest": "INSERT INTO user_latest (user_id, photo_id) VALUES (?, ?) USING TIMESTAMP ?",
    "latest": "SELECT user_id, photo_id FROM user_latest WHERE user_id IN ?",
    "add_photos": "UPDATE photo_counts SET photos = photos + ? WHERE user_id = ?",
    "count_photos": "SELECT photos FROM photo_counts WHERE user_id = ?",
    "add_request": (
        "INSERT INTO follow_requests (user_id, requester_id, created_at) VALUES (?, ?, ?) "
        "IF NOT EXISTS"
    ),
    "remove_request": (
        "DELETE FROM follow_requests WHERE user_id = ? AND requester_id = ? IF EXISTS"
    ),
    "requests": (
        "SELECT requester_id FROM follow_requests WHERE user_id = ? AND requester_id > ? LIMIT ?"
    ),
    "create_session": (
        "INSERT INTO sessions (token_hash, user_id, created_at) VALUES (?, ?, ?) USING TTL ?"
    ),
    "get_session": "SELECT user_id FROM sessions WHERE token_hash = ?",
    "delete_session": "DELETE FROM sessions WHERE token_hash = ?",
    "claim_key": (
        "INSERT INTO idempotency_keys (user_id, key, photo_id, claimed_at) VALUES (?, ?, ?, ?) "
        "IF NOT EXISTS USING TTL ?"
    ),
    "take_over_key": (
        "UPDATE idempotency_keys USING TTL ? SET photo_id = ?, claimed_at = ?, intent = null "
        "WHERE user_id = ? AND key = ? IF photo_id = ? AND claimed_at = ?"
    ),
    # photo_id is written again so that all of the row's cells share the new TTL.
    "renew_key": (
        "UPDATE idempotency_keys USING TTL ? SET photo_id = ?, claimed_at = ? WHERE user_id = ? "
        "AND key = ? IF photo_id = ?"
    ),
    "renew_key_intent": (
        "UPDATE idempotency_keys USING TTL ? SET photo_id = ?, claimed_at = ?, intent = ? "
        "WHERE user_id = ? AND key = ? IF photo_id = ?"
    ),
    "release_key": "DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? IF photo_id = ?",
    "server_key": "INSERT INTO server_keys (name, secret) VALUES (?, ?) IF NOT EXISTS",
}
LATEST_CHUNK = 100  # partition keys per IN query for user_latest, chunks run concurrently


def build_cluster(settings: Settings) -> Cluster:
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)
        ),
        consistency_level=ConsistencyLevel.name_to_value[settings.consistency],
        serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
        request_timeout=REQUEST_TIMEOUT_S,
    )
    auth = None
    if settings.cassandra_username:
        auth = PlainTextAuthProvider(settings.cassandra_username, settings.cassandra_password)
    return Cluster(
        contact_points=settings.cassandra_contact_points,
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=auth,
        connect_timeout=CONNECT_TIMEOUT_S,
        protocol_version=ProtocolVersion.V5,  # Cassandra 4.0+; skips two downgrade round trips
        # The driver's default backs off to 10 minutes; a node back after a restart
        # should be used again within seconds.
        reconnection_policy=ExponentialReconnectionPolicy(
            base_delay=0.5, max_delay=RECONNECT_MAX_S
        ),
    )


def _user(row) -> User | None:
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


def _shard(photo_id: int) -> int:
    return photo_id % PURGE_SHARDS


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
        self.q = prepared

    @classmethod
    async def connect(cls, settings: Settings) -> CassandraMetadataStore:
        cluster = build_cluster(settings)
        try:
            with translate_errors("connect"):
                # Connecting blocks on the network (contact points, topology): off the loop.
                session = await asyncio.to_thread(cluster.connect)
            await asyncio.to_thread(_require_schema, session, settings)
            with translate_errors("preparing statements"):
                names = list(STATEMENTS)
                statements = await asyncio.gather(
                    *(asyncio.to_thread(session.prepare, STATEMENTS[n]) for n in names)
                )
        except BaseException:
            await asyncio.to_thread(cluster.shutdown)
            raise
        return cls(cluster, session, settings, dict(zip(names, statements, strict=True)))

    async def _q(self, name: str, *params, what: str | None = None) -> list:
        return await execute(self.session, self.q[name], params, what=what or name)

    async def _batch(self, what: str, *items: tuple[str, tuple]) -> None:
        """One logged batch of idempotent writes, tried again while its outcome is
        unknown: the same rows written twice are the same rows."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        for name, params in items:
            batch.add(self.q[name], params)
        await settle(what, lambda: execute(self.session, batch, None, what=what))

    async def _count(self, what: str, *items: tuple[str, tuple]) -> None:
        """Counter updates after the change they count is stored. Never tried again (a
        counter update is not idempotent: a retry of one that did happen counts twice),
        and a failure is logged, not raised: the change itself stands, its count may be
        off by one."""
        batch = BatchStatement(batch_type=BatchType.COUNTER)
        for name, params in items:
            batch.add(self.q[name], params)
        try:
            await execute(self.session, batch, None, what=what)
        except StorageError as exc:
            log.warning("%s not counted (the count may be off by one): %s", what, exc)

    async def ping(self) -> None:
        await execute(self.session, "SELECT release_version FROM system.local", what="ping")

    async def close(self) -> None:
        await asyncio.to_thread(self.cluster.shutdown)

    # ---- users --------------------------------------------------------------------

    async def create_user(self, user: User) -> None:
        # The users row first: if the name is taken it is removed again; if we crash in
        # between, an unreachable users row is left, never a name without a user. Both
        # writes are tried again while their outcome is unknown: a claim that did land
        # comes back as held by this user's id. The users row is removed only once the
        # name is known to be someone else's.
        await settle(
            "create user",
            lambda: self._q(
                "insert_user",
                user.id,
                user.username,
                user.password_hash,
                user.display_name,
                user.private,
                user.created_at,
            ),
        )
        (row,) = await settle(
            "claim username", lambda: self._q("claim_name", user.username, user.id)
        )
        if not row[0]:
            if row.user_id == user.id:  # a retry of our own claim
                return
            try:
                await self._q("delete_user", user.id)
            except StorageError as exc:
                log.warning(
                    "could not remove the users row of %d (unreachable, harmless): %s", user.id, exc
                )
            raise Conflict(f"username {user.username!r} is taken")

    async def update_user(self, user: User) -> None:
        await self._q("update_user", user.password_hash, user.display_name, user.private, user.id)

    async def get_user(self, user_id: int) -> User | None:
        rows = await self._q("get_user", user_id)
        return _user(rows[0] if rows else None)

    async def get_user_by_name(self, username: str) -> User | None:
        rows = await self._q("user_id_by_name", username)
        return await self.get_user(rows[0].user_id) if rows else None

    # ---- photos -------------------------------------------------------------------

    async def save_photo(self, photo: Photo, terms: Sequence[str]) -> None:
        bucket = bucket_of(photo.id)
        items = [
            ("insert_photo", (photo.id, codec.encode_photo(photo))),
            ("insert_user_photo", (photo.owner_id, bucket, photo.id)),
            ("insert_user_bucket", (photo.owner_id, bucket)),
            # Last write wins by the photo's own time: an older photo saved late never
            # hides a newer one.
            ("set_latest", (photo.owner_id, photo.id, _cell_timestamp(photo.id))),
        ]
        for term in terms:
            items += [
                ("insert_term", (term, bucket, photo.id)),
                ("insert_term_bucket", (term, bucket)),
            ]
        if await self.get_photo(photo.id) is not None:
            return  # saved already (a retry): the rows are there and counted, once
        await self._batch("save_photo", *items)
        await self._count("photo count", ("add_photos", (1, photo.owner_id)))

    async def get_photo(self, photo_id: int) -> Photo | None:
        rows = await self._q("get_photo", photo_id)
        if not rows or rows[0].record is None:
            return None
        return codec.decode_photo(rows[0].record, _utc(rows[0].deleted_at))

    async def scan_photos(self) -> AsyncIterator[Photo]:
        """A full scan in token order, one page per query (a batch job's read)."""
        after = MIN_TOKEN
        while True:
            rows = await self._q("scan_photos", after, SCAN_PAGE)
            for row in rows:
                if row.record is not None:  # a deleted_at cell left without its record
                    yield codec.decode_photo(row.record, _utc(row.deleted_at))
            if len(rows) < SCAN_PAGE:
                return
            after = rows[-1].t

    async def get_photos(self, photo_ids: Sequence[int]) -> dict[int, Photo]:
        photos = await asyncio.gather(*(self.get_photo(i) for i in photo_ids))
        return {p.id: p for p in photos if p is not None}

    async def _buckets(self, statement: str, key, top: int):
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
                for r in await self._q("user_photos", user_id, bucket_of(before), before, limit)
            ]
            if len(ids) >= limit:
                return ids
            top = bucket_of(before) - 1
        else:
            before = MAX_ID
        async for bucket in self._buckets("user_buckets", user_id, top):
            rows = await self._q("user_photos", user_id, bucket, before, limit - len(ids))
            ids += [r.photo_id for r in rows]
            if len(ids) >= limit:
                break
        return ids

    async def set_deleted(self, photo: Photo, deleted_at: datetime | None) -> None:
        if deleted_at is not None:
            await self._batch(
                "soft delete",
                ("set_deleted", (deleted_at, photo.id)),
                ("enqueue_purge", (_shard(photo.id), deleted_at.date(), photo.id)),
            )
            if not photo.deleted:
                await self._count("photo count", ("add_photos", (-1, photo.owner_id)))
        else:
            items = [("set_deleted", (None, photo.id))]
            if photo.deleted_at is not None:
                items.append(
                    ("dequeue_purge", (_shard(photo.id), photo.deleted_at.date(), photo.id))
                )
            await self._batch("restore", *items)
            if photo.deleted:
                await self._count("photo count", ("add_photos", (1, photo.owner_id)))

    async def due_purges(self, through: date, limit: int) -> list[PurgeEntry]:
        shards = await asyncio.gather(
            *(self._q("due_purges", s, through, limit) for s in range(PURGE_SHARDS))
        )
        entries = [PurgeEntry(r.day.date(), r.photo_id) for rows in shards for r in rows]
        return sorted(entries, key=lambda e: (e.day, e.photo_id))[:limit]

    async def forget_purge(self, entry: PurgeEntry) -> None:
        await self._q("dequeue_purge", _shard(entry.photo_id), entry.day, entry.photo_id)

    async def purge_photo(self, photo: Photo, terms: Sequence[str]) -> None:
        bucket = bucket_of(photo.id)
        items = [
            ("delete_photo", (photo.id,)),
            ("delete_user_photo", (photo.owner_id, bucket, photo.id)),
            ("delete_likes", (photo.id,)),
            *[("delete_term", (term, bucket, photo.id)) for term in terms],
        ]
        if photo.deleted_at is not None:
            items.append(("dequeue_purge", (_shard(photo.id), photo.deleted_at.date(), photo.id)))
        await self._batch("purge", *items)
        # Counters cannot join a logged batch; deleting one is idempotent.
        await settle("purge like count", lambda: self._q("delete_like_count", photo.id))

    # ---- follows ------------------------------------------------------------------

    async def follow(self, follower_id: int, followee_id: int, at: datetime) -> bool:
        if await self.is_following(follower_id, followee_id):
            return False
        await self._batch(
            "follow",
            ("insert_follow", (follower_id, followee_id, at)),
            ("insert_follower", (followee_id, follower_id, at)),
        )
        await self._count(
            "follow counts",
            ("add_following", (1, follower_id)),
            ("add_followers", (1, followee_id)),
        )
        return True

    async def unfollow(self, follower_id: int, followee_id: int) -> bool:
        if not await self.is_following(follower_id, followee_id):
            return False
        await self._batch(
            "unfollow",
            ("delete_follow", (follower_id, followee_id)),
            ("delete_follower", (followee_id, follower_id)),
        )
        await self._count(
            "follow counts",
            ("add_following", (-1, follower_id)),
            ("add_followers", (-1, followee_id)),
        )
        return True

    async def is_following(self, follower_id: int, followee_id: int) -> bool:
        return bool(await self._q("is_following", follower_id, followee_id))

    async def following(self, user_id: int, after: int | None, limit: int) -> list[int]:
        return [r.followee_id for r in await self._q("following", user_id, after or 0, limit)]

    async def followers(self, user_id: int, after: int | None, limit: int) -> list[int]:
        return [r.follower_id for r in await self._q("followers", user_id, after or 0, limit)]

    async def count_follows(self, user_id: int) -> tuple[int, int]:
        rows = await self._q("count_follows", user_id)
        if not rows:
            return (0, 0)
        return (rows[0].followers or 0, rows[0].following or 0)

    async def latest_photo_ids(self, user_ids: Sequence[int]) -> dict[int, int]:
        chunks = [
            list(user_ids[i : i + LATEST_CHUNK]) for i in range(0, len(user_ids), LATEST_CHUNK)
        ]
        results = await asyncio.gather(*(self._q("latest", chunk) for chunk in chunks))
        return {r.user_id: r.photo_id for rows in results for r in rows}

    async def count_photos(self, user_id: int) -> int:
        rows = await self._q("count_photos", user_id)
        return max(0, rows[0].photos or 0) if rows else 0

    # ---- follow requests ------------------------------------------------------------

    async def add_follow_request(self, user_id: int, requester_id: int, at: datetime) -> bool:
        (row,) = await self._q("add_request", user_id, requester_id, at)
        return bool(row[0])

    async def remove_follow_request(self, user_id: int, requester_id: int) -> bool:
        (row,) = await self._q("remove_request", user_id, requester_id)
        return bool(row[0])

    async def follow_requests(self, user_id: int, after: int | None, limit: int) -> list[int]:
        return [r.requester_id for r in await self._q("requests", user_id, after or 0, limit)]

    # ---- sessions and idempotency -----------------------------------------------------

    async def create_session(self, token_hash: str, user_id: int, expires_at: datetime) -> None:
        now = datetime.now(UTC)
        ttl = max(1, int((expires_at - now).total_seconds()))
        await self._q("create_session", token_hash, user_id, now, ttl)

    async def get_session(self, token_hash: str, now: datetime) -> int | None:
        rows = await self._q("get_session", token_hash)  # expiry is the row's TTL
        return rows[0].user_id if rows else None

    async def delete_session(self, token_hash: str) -> None:
        await self._q("delete_session", token_hash)

    async def claim_idempotency_key(
        self, user_id: int, key: str, photo_id: int, now: datetime, expires_at: datetime
    ) -> KeyClaim:
        (row,) = await self._q("claim_key", user_id, key, photo_id, now, _ttl(now, expires_at))
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
            "take_over_key",
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
            (row,) = await self._q("renew_key", ttl, photo_id, now, user_id, key, photo_id)
        else:
            record = codec.encode_photo(intent)
            (row,) = await self._q(
                "renew_key_intent", ttl, photo_id, now, record, user_id, key, photo_id
            )
        return bool(row[0])

    async def release_idempotency_key(self, user_id: int, key: str, photo_id: int) -> None:
        await self._q("release_key", user_id, key, photo_id)

    # ---- deployment secrets --------------------------------------------------------

    async def server_key(self, name: str, candidate: bytes) -> bytes:
        # A lightweight transaction: of servers starting at once, one inserts and the
        # others read its value back in the same answer.
        (row,) = await self._q("server_key", name, candidate)
        return candidate if row[0] else bytes(row.secret)

    # ---- search -------------------------------------------------------------------

    async def search_terms(self, terms: Sequence[str], before: int | None, limit: int) -> list[int]:
        if not terms:
            return []
        # The longest word is usually the rarest: walk its postings, probe the others.
        ordered = sorted(set(terms), key=len, reverse=True)
        first, others = ordered[0], ordered[1:]
        before = MAX_ID if before is None else before
        top = bucket_of(before)
        common = None
        for term in ordered:
            buckets = {b async for b in self._buckets("term_buckets", term, top)}
            common = buckets if common is None else common & buckets
        found: list[int] = []
        for bucket in sorted(common or (), reverse=True):
            cursor = before
            while True:
                page = [
                    r.photo_id
                    for r in await self._q("term_postings", first, bucket, cursor, SEARCH_PAGE)
                ]
                matches = set(page)
                for term in others:
                    if not matches:
                        break
                    rows = await self._q("term_has", term, bucket, list(matches))
                    matches &= {r.photo_id for r in rows}
                found += sorted(matches, reverse=True)
                if len(found) >= limit:
                    return found[:limit]
                if len(page) < SEARCH_PAGE:
                    break
                cursor = page[-1]
        return found

    # ---- likes --------------------------------------------------------------------

    async def like(self, photo_id: int, user_id: int, at: datetime) -> bool:
        # Tried again while its outcome is unknown; one that landed then answers "liked
        # already", and the count stays one low (never counted twice).
        (row,) = await settle("like", lambda: self._q("like", photo_id, user_id, at))
        if not row[0]:
            return False
        await self._count("like count", ("add_likes", (1, photo_id)))
        return True

    async def unlike(self, photo_id: int, user_id: int) -> bool:
        # Not tried again on an unknown outcome: a retry of a removal that landed finds
        # nothing, so the caller's retry answers "no like" and the count stays one high.
        (row,) = await self._q("unlike", photo_id, user_id)
        if not row[0]:
            return False
        await self._count("like count", ("add_likes", (-1, photo_id)))
        return True

    async def like_counts(self, photo_ids: Sequence[int]) -> dict[int, int]:
        rows = await asyncio.gather(*(self._q("like_count", i) for i in photo_ids))
        return {i: (r[0].likes or 0) if r else 0 for i, r in zip(photo_ids, rows, strict=True)}


def _require_schema(session: Session, settings: Settings) -> None:
    missing = migrate.pending(session, settings)
    if missing:
        raise Unavailable(
            f"keyspace {settings.cassandra_keyspace!r} lacks schema {', '.join(missing)}; "
            "run `instastore migrate`"
        )
    session.set_keyspace(settings.cassandra_keyspace)
