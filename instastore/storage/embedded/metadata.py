"""SQLite metadata store: one connection, owned by one worker thread.

Every statement runs on that thread (Datasette's ``execute_fn`` pattern), so the event
loop never waits on SQLite and the connection is never shared between threads. WAL mode
and ``synchronous=FULL``: a committed write survives a crash of the process or machine.
Schema files (``schema/sqlite``) are applied on connect, each once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from instastore import codec, search
from instastore.config import Settings
from instastore.errors import Conflict, StorageError, Unavailable
from instastore.ids import MAX_ID
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
from instastore.schema import migrations
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
)

T = TypeVar("T")
DB_FILE = "metadata.sqlite3"
BUSY_TIMEOUT_S = 10.0
SCAN_PAGE = 1000  # photo records read at a time by scan_photos
HIDDEN_PHOTOS_VERSION = 8  # 008_hidden_photos.sql: applying it fills the table
SEARCH_CHUNK = 500  # postings a search walks per call on the SQLite thread (~1 ms each)


def _ms(at: datetime | None) -> int | None:
    return None if at is None else round(at.timestamp() * 1000)


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _hide(photo: Photo) -> list[tuple[str, Sequence[Any]]]:
    """The hidden_photos row of a photo that only followers, or only its owner, may see."""
    if photo.visibility is Visibility.PUBLIC:
        return []
    return [
        (
            "INSERT OR IGNORE INTO hidden_photos (user_id, photo_id, visibility) VALUES (?, ?, ?)",
            (photo.owner_id, photo.id, photo.visibility.value),
        )
    ]


def _user(row: sqlite3.Row | None) -> User | None:
    if row is None:
        return None
    return User(
        id=row["user_id"],
        username=row["username"],
        password_hash=row["password_hash"],
        display_name=row["display_name"],
        private=bool(row["private"]),
        created_at=_at(row["created_ms"]),
    )


def _session(row: sqlite3.Row | None) -> UserSession | None:
    if row is None or row["session_id"] is None:  # made by a server older than schema 009
        return None
    return UserSession(
        id=row["session_id"],
        user_id=row["user_id"],
        created_at=_utc(row["created_ms"]),
        last_used_at=_utc(row["last_used_ms"]),
        expires_at=_utc(row["expires_ms"]),
        address=row["address"],
    )


def _comment(row: sqlite3.Row) -> Comment:
    return Comment(
        row["comment_id"], row["photo_id"], row["author_id"], row["text"], _utc(row["created_ms"])
    )


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


SQL_CHUNK = 400  # ids per IN list beside a page's: under SQLite's 999 bound variables


class SqliteMetadataStore:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def connect(cls, settings: Settings) -> SqliteMetadataStore:
        store = cls(Path(settings.data_dir) / DB_FILE)
        await store._run(store._open)
        return store

    # ---- the worker thread ------------------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        conn.row_factory = sqlite3.Row
        self._conn = conn
        # Processes opening one fresh database at once (``serve --workers N``) can meet
        # "database is locked" without SQLite's busy wait: turning the file to WAL and
        # recovering its index answer SQLITE_BUSY at once. Every step here may be taken
        # again (each migration checks, under the write lock, whether it is applied), so
        # it is, until the busy timeout's worth of time has gone.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                self._migrate(conn)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.02, 0.2))

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
        )
        # Each migration is applied under the write lock, after reading what is applied
        # under that same lock: ``serve --workers N`` opens one database from N processes
        # at once, and a version read before the lock could be applied by another meanwhile.
        for migration in migrations("sqlite"):
            with _transaction(conn):
                applied = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
                ).fetchone()
                if applied is not None:
                    continue
                for statement in migration.statements():
                    conn.execute(statement)
                if migration.version == HIDDEN_PHOTOS_VERSION:
                    _fill_hidden_photos(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?, ?, ?)",
                    (migration.version, migration.name, int(time.time() * 1000)),
                )

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError("the store is closed")
        return self._conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"SQLite at {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite at {self.path}: {exc}") from exc
        except RuntimeError as exc:  # the executor was shut down
            raise Unavailable(f"SQLite store at {self.path} is closed") from exc

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self._run(lambda: self.conn.execute(sql, params).fetchall())

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        return await self._run(lambda: self.conn.execute(sql, params).fetchone())

    async def _write(self, *statements: tuple[str, Sequence[Any]]) -> list[int]:
        """Run the statements in one transaction; their row counts."""

        def run() -> list[int]:
            with _transaction(self.conn):
                return [self.conn.execute(sql, params).rowcount for sql, params in statements]

        return await self._run(run)

    async def ping(self) -> None:
        await self._one("SELECT 1")

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    # ---- users --------------------------------------------------------------------

    async def create_user(self, user: User) -> None:
        def create() -> None:
            with _transaction(self.conn):
                # Written once: a user id holding another account is a conflict.
                if self.conn.execute(
                    "SELECT 1 FROM users WHERE user_id = ?", (user.id,)
                ).fetchone():
                    raise Conflict(
                        f"user id {user.id} holds another account already; nothing was stored"
                    )
                try:
                    self.conn.execute(
                        "INSERT INTO users "
                        "(user_id, username, password_hash, display_name, private, created_ms) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            user.id,
                            user.username,
                            user.password_hash,
                            user.display_name,
                            int(user.private),
                            _ms(user.created_at),
                        ),
                    )
                except sqlite3.IntegrityError as exc:
                    raise Conflict(f"username {user.username!r} is taken") from exc

        await self._run(create)

    async def update_user(self, user: User) -> None:
        await self._write(
            (
                "UPDATE users SET display_name = ?, private = ? WHERE user_id = ?",
                (user.display_name, int(user.private), user.id),
            )
        )

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self._write(
            ("UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id))
        )

    async def get_user(self, user_id: int) -> User | None:
        return _user(await self._one("SELECT * FROM users WHERE user_id = ?", (user_id,)))

    async def get_user_by_name(self, username: str) -> User | None:
        return _user(await self._one("SELECT * FROM users WHERE username = ?", (username,)))

    async def usernames_from(
        self, prefix: str, after: str | None, limit: int
    ) -> list[tuple[str, int]]:
        # The UNIQUE index on username serves the range; "\x7f" follows every character
        # a username may hold.
        rows = await self._all(
            "SELECT username, user_id FROM users WHERE username > ? AND username >= ? "
            "AND username < ? ORDER BY username LIMIT ?",
            (after or "", prefix, prefix + "\x7f", limit),
        )
        return [(r[0], r[1]) for r in rows]

    # ---- photos -------------------------------------------------------------------

    async def save_photo(self, photo: Photo, terms: Sequence[str]) -> None:
        def save() -> None:
            with _transaction(self.conn):  # BEGIN IMMEDIATE: read and write as one
                row = self.conn.execute(
                    "SELECT record FROM photos WHERE photo_id = ?", (photo.id,)
                ).fetchone()
                # Written once: an id holding another photo is a conflict; a record of
                # this same upload (an earlier try, perhaps switched by the packer since)
                # stays as it is.
                if row is not None and not codec.decode_photo(row[0]).same_upload(photo):
                    raise Conflict(
                        f"photo id {photo.id} holds another photo already; nothing was saved"
                    )
                for sql, params in (
                    (
                        "INSERT OR IGNORE INTO photos (photo_id, record) VALUES (?, ?)",
                        (photo.id, codec.encode_photo(photo)),
                    ),
                    (
                        "INSERT OR IGNORE INTO user_photos (user_id, photo_id) VALUES (?, ?)",
                        (photo.owner_id, photo.id),
                    ),
                    *[
                        (
                            "INSERT OR IGNORE INTO title_terms (term, photo_id) VALUES (?, ?)",
                            (t, photo.id),
                        )
                        for t in terms
                    ],
                    ("INSERT OR IGNORE INTO pack_queue (photo_id) VALUES (?)", (photo.id,)),
                    # Its fan-out into followers' inboxes is owed until it is done.
                    (
                        "INSERT OR IGNORE INTO fanout_queue (owner_id, photo_id) VALUES (?, ?)",
                        (photo.owner_id, photo.id),
                    ),
                    *_hide(photo),
                ):
                    self.conn.execute(sql, params)

        await self._run(save)

    async def get_photo(self, photo_id: int) -> Photo | None:
        row = await self._one(
            "SELECT record, deleted_ms FROM photos WHERE photo_id = ?", (photo_id,)
        )
        return None if row is None else codec.decode_photo(row["record"], _at(row["deleted_ms"]))

    async def scan_photos(self) -> AsyncIterator[Photo]:
        after = -1
        while True:
            rows = await self._all(
                "SELECT photo_id, record, deleted_ms FROM photos WHERE photo_id > ? "
                "ORDER BY photo_id LIMIT ?",
                (after, SCAN_PAGE),
            )
            for row in rows:
                yield codec.decode_photo(row["record"], _at(row["deleted_ms"]))
            if len(rows) < SCAN_PAGE:
                return
            after = rows[-1]["photo_id"]

    async def get_photos(self, photo_ids: Sequence[int]) -> dict[int, Photo]:
        if not photo_ids:
            return {}
        marks = ",".join("?" * len(photo_ids))
        rows = await self._all(
            f"SELECT record, deleted_ms FROM photos WHERE photo_id IN ({marks})", list(photo_ids)
        )
        photos = (codec.decode_photo(r["record"], _at(r["deleted_ms"])) for r in rows)
        return {p.id: p for p in photos}

    async def user_photo_ids(self, user_id: int, before: int | None, limit: int) -> list[int]:
        rows = await self._all(
            "SELECT photo_id FROM user_photos WHERE user_id = ? AND photo_id < ? "
            "ORDER BY photo_id DESC LIMIT ?",
            (user_id, before if before is not None else MAX_ID, limit),
        )
        return [r[0] for r in rows]

    async def set_deleted(self, photo: Photo, deleted_at: datetime | None) -> None:
        if deleted_at is not None:
            await self._write(
                (
                    "UPDATE photos SET deleted_ms = ? WHERE photo_id = ?",
                    (_ms(deleted_at), photo.id),
                ),
                (
                    "INSERT OR IGNORE INTO purge_queue (day, photo_id) VALUES (?, ?)",
                    (deleted_at.date().isoformat(), photo.id),
                ),
            )
        else:
            await self._write(
                ("UPDATE photos SET deleted_ms = NULL WHERE photo_id = ?", (photo.id,)),
                ("DELETE FROM purge_queue WHERE photo_id = ?", (photo.id,)),
            )

    async def due_purges(self, through: date, limit: int) -> list[PurgeEntry]:
        rows = await self._all(
            "SELECT day, photo_id FROM purge_queue WHERE day <= ? ORDER BY day, photo_id LIMIT ?",
            (through.isoformat(), limit),
        )
        return [PurgeEntry(date.fromisoformat(r[0]), r[1]) for r in rows]

    async def forget_purge(self, entry: PurgeEntry) -> None:
        await self._write(
            (
                "DELETE FROM purge_queue WHERE day = ? AND photo_id = ?",
                (entry.day.isoformat(), entry.photo_id),
            )
        )

    async def purge_photo(self, photo: Photo, terms: Sequence[str]) -> None:
        await self._write(
            ("DELETE FROM photos WHERE photo_id = ?", (photo.id,)),
            (
                "DELETE FROM user_photos WHERE user_id = ? AND photo_id = ?",
                (photo.owner_id, photo.id),
            ),
            ("DELETE FROM title_terms WHERE photo_id = ?", (photo.id,)),
            ("DELETE FROM tag_photos WHERE photo_id = ?", (photo.id,)),
            ("DELETE FROM likes WHERE photo_id = ?", (photo.id,)),
            ("DELETE FROM comments WHERE photo_id = ?", (photo.id,)),
            ("DELETE FROM purge_queue WHERE photo_id = ?", (photo.id,)),
            ("DELETE FROM pack_queue WHERE photo_id = ?", (photo.id,)),
            (
                "DELETE FROM hidden_photos WHERE user_id = ? AND photo_id = ?",
                (photo.owner_id, photo.id),
            ),
        )

    # ---- timeline inboxes ------------------------------------------------------------

    async def inbox_ids(
        self, reader_id: int, before: int | None, floor: int, limit: int
    ) -> list[int]:
        rows = await self._all(
            "SELECT photo_id FROM timeline_inbox WHERE reader_id = ? AND photo_id < ? "
            "AND photo_id > ? AND expires_ms > ? ORDER BY photo_id DESC LIMIT ?",
            (reader_id, before or MAX_ID, floor, _ms(datetime.now(UTC)), limit),
        )
        return [r[0] for r in rows]

    async def add_to_inboxes(self, entries: Sequence[InboxEntry]) -> None:
        now = _ms(datetime.now(UTC)) or 0
        rows = [
            (e.reader_id, e.photo_id, e.owner_id, until)
            for e in entries
            if (until := _ms(e.until) or 0) > now
        ]

        def write() -> None:
            with _transaction(self.conn):
                self.conn.executemany(
                    "INSERT OR REPLACE INTO timeline_inbox "
                    "(reader_id, photo_id, owner_id, expires_ms) VALUES (?, ?, ?, ?)",
                    rows,
                )
                # Expired rows of these inboxes go as new ones come (a TTL on the cluster).
                self.conn.executemany(
                    "DELETE FROM timeline_inbox WHERE reader_id = ? AND expires_ms <= ?",
                    [(reader, now) for reader in {r[0] for r in rows}],
                )

        if rows:
            await self._run(write)

    async def latest_marks(self, user_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        if not user_ids:
            return {}
        marks = ",".join("?" * len(user_ids))
        rows = await self._all(
            f"SELECT u.user_id, MAX(u.photo_id), COALESCE(m.fanned_to, 0) FROM user_photos u "
            f"LEFT JOIN fanout_marks m USING (user_id) WHERE u.user_id IN ({marks}) "
            "GROUP BY u.user_id",
            list(user_ids),
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    async def mark_fanned(self, user_id: int, photo_id: int) -> None:
        await self._write(
            (
                "INSERT INTO fanout_marks (user_id, fanned_to) VALUES (?, ?) ON CONFLICT "
                "(user_id) DO UPDATE SET fanned_to = MAX(fanned_to, excluded.fanned_to)",
                (user_id, photo_id),
            )
        )

    async def pending_fanouts(self, owner_id: int) -> list[int]:
        rows = await self._all(
            "SELECT photo_id FROM fanout_queue WHERE owner_id = ? ORDER BY photo_id", (owner_id,)
        )
        return [r[0] for r in rows]

    async def queued_fanouts(self, limit: int) -> list[tuple[int, int]]:
        rows = await self._all(
            "SELECT owner_id, photo_id FROM fanout_queue ORDER BY owner_id, photo_id LIMIT ?",
            (limit,),
        )
        return [(r[0], r[1]) for r in rows]

    async def forget_fanout(self, owner_id: int, photo_id: int) -> None:
        await self._write(
            (
                "DELETE FROM fanout_queue WHERE owner_id = ? AND photo_id = ?",
                (owner_id, photo_id),
            )
        )

    async def inbox_backfills(self, reader_id: int) -> list[tuple[int, datetime]]:
        rows = await self._all(
            "SELECT followee_id, since_ms FROM inbox_backfills WHERE reader_id = ? "
            "ORDER BY followee_id",
            (reader_id,),
        )
        return [(r[0], datetime.fromtimestamp(r[1] / 1000, UTC)) for r in rows]

    async def forget_backfill(self, reader_id: int, followee_id: int, since: datetime) -> None:
        await self._write(
            (
                "DELETE FROM inbox_backfills WHERE reader_id = ? AND followee_id = ? "
                "AND since_ms = ?",
                (reader_id, followee_id, _ms(since)),
            )
        )

    # ---- follows ------------------------------------------------------------------

    async def follow(self, follower_id: int, followee_id: int, at: datetime) -> bool:
        (count, _) = await self._write(
            (
                "INSERT OR IGNORE INTO follows (follower_id, followee_id, created_ms) "
                "VALUES (?, ?, ?)",
                (follower_id, followee_id, _ms(at)),
            ),
            # The followee's recent photos are owed to the follower's inbox.
            (
                "INSERT OR IGNORE INTO inbox_backfills (reader_id, followee_id, since_ms) "
                "VALUES (?, ?, ?)",
                (follower_id, followee_id, _ms(at)),
            ),
        )
        return count == 1

    async def unfollow(self, follower_id: int, followee_id: int) -> bool:
        (count, _) = await self._write(
            (
                "DELETE FROM follows WHERE follower_id = ? AND followee_id = ?",
                (follower_id, followee_id),
            ),
            (
                "DELETE FROM inbox_backfills WHERE reader_id = ? AND followee_id = ?",
                (follower_id, followee_id),
            ),
        )
        return count == 1

    async def is_following(self, follower_id: int, followee_id: int) -> bool:
        row = await self._one(
            "SELECT 1 FROM follows WHERE follower_id = ? AND followee_id = ?",
            (follower_id, followee_id),
        )
        return row is not None

    async def following(self, user_id: int, after: int | None, limit: int) -> list[int]:
        rows = await self._all(
            "SELECT followee_id FROM follows WHERE follower_id = ? AND followee_id > ? "
            "ORDER BY followee_id LIMIT ?",
            (user_id, after or 0, limit),
        )
        return [r[0] for r in rows]

    async def followers(self, user_id: int, after: int | None, limit: int) -> list[int]:
        rows = await self._all(
            "SELECT follower_id FROM follows WHERE followee_id = ? AND follower_id > ? "
            "ORDER BY follower_id LIMIT ?",
            (user_id, after or 0, limit),
        )
        return [r[0] for r in rows]

    async def count_follows(self, user_id: int) -> tuple[int, int]:
        row = await self._one(
            "SELECT (SELECT COUNT(*) FROM follows WHERE followee_id = ?), "
            "(SELECT COUNT(*) FROM follows WHERE follower_id = ?)",
            (user_id, user_id),
        )
        return (row[0], row[1]) if row else (0, 0)

    async def latest_photo_ids(self, user_ids: Sequence[int]) -> dict[int, int]:
        if not user_ids:
            return {}
        marks = ",".join("?" * len(user_ids))
        rows = await self._all(
            f"SELECT user_id, MAX(photo_id) FROM user_photos WHERE user_id IN ({marks}) "
            "GROUP BY user_id",
            list(user_ids),
        )
        return {r[0]: r[1] for r in rows}

    async def count_photos(self, user_id: int) -> PhotoCounts:
        row = await self._one(
            "SELECT COUNT(*), COALESCE(SUM(h.visibility = ?), 0), "
            "COALESCE(SUM(h.visibility = ?), 0) FROM user_photos u JOIN photos p USING "
            "(photo_id) LEFT JOIN hidden_photos h USING (user_id, photo_id) "
            "WHERE u.user_id = ? AND p.deleted_ms IS NULL",
            (Visibility.FOLLOWERS.value, Visibility.PRIVATE.value, user_id),
        )
        assert row is not None  # COUNT(*) answers exactly one row
        return PhotoCounts(row[0], row[1], row[2])

    # ---- follow requests ------------------------------------------------------------

    async def add_follow_request(self, user_id: int, requester_id: int, at: datetime) -> bool:
        (count,) = await self._write(
            (
                "INSERT OR IGNORE INTO follow_requests (user_id, requester_id, created_ms) "
                "VALUES (?, ?, ?)",
                (user_id, requester_id, _ms(at)),
            )
        )
        return count == 1

    async def remove_follow_request(self, user_id: int, requester_id: int) -> bool:
        (count,) = await self._write(
            (
                "DELETE FROM follow_requests WHERE user_id = ? AND requester_id = ?",
                (user_id, requester_id),
            )
        )
        return count == 1

    async def follow_requests(self, user_id: int, after: int | None, limit: int) -> list[int]:
        rows = await self._all(
            "SELECT requester_id FROM follow_requests WHERE user_id = ? AND requester_id > ? "
            "ORDER BY requester_id LIMIT ?",
            (user_id, after or 0, limit),
        )
        return [r[0] for r in rows]

    async def has_follow_request(self, user_id: int, requester_id: int) -> bool:
        row = await self._one(
            "SELECT 1 FROM follow_requests WHERE user_id = ? AND requester_id = ?",
            (user_id, requester_id),
        )
        return row is not None

    # ---- sessions and idempotency -----------------------------------------------------

    async def create_session(self, token_hash: str, session: UserSession) -> None:
        await self._write(
            (  # the user's expired sessions go as a new one comes (nothing else removes them)
                "DELETE FROM sessions WHERE user_id = ? AND expires_ms <= ?",
                (session.user_id, _ms(session.created_at)),
            ),
            (
                "INSERT INTO sessions (token_hash, user_id, expires_ms, session_id, created_ms, "
                "last_used_ms, address) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    token_hash,
                    session.user_id,
                    _ms(session.expires_at),
                    session.id,
                    _ms(session.created_at),
                    _ms(session.last_used_at),
                    session.address,
                ),
            ),
        )

    async def get_session(self, token_hash: str, now: datetime) -> UserSession | None:
        return _session(
            await self._one(
                "SELECT * FROM sessions WHERE token_hash = ? AND expires_ms > ?",
                (token_hash, _ms(now)),
            )
        )

    async def touch_session(self, token_hash: str, session: UserSession, at: datetime) -> None:
        await self._write(
            ("UPDATE sessions SET last_used_ms = ? WHERE token_hash = ?", (_ms(at), token_hash))
        )

    async def user_sessions(self, user_id: int, now: datetime, limit: int) -> list[UserSession]:
        rows = await self._all(
            "SELECT * FROM sessions WHERE user_id = ? AND expires_ms > ? "
            "ORDER BY session_id DESC LIMIT ?",
            (user_id, _ms(now), limit),
        )
        return [s for s in map(_session, rows) if s is not None]

    async def delete_session(self, user_id: int, session_id: int) -> bool:
        (deleted,) = await self._write(
            ("DELETE FROM sessions WHERE user_id = ? AND session_id = ?", (user_id, session_id))
        )
        return deleted > 0

    async def delete_user_sessions(self, user_id: int, keep: int | None = None) -> None:
        await self._write(
            (
                "DELETE FROM sessions WHERE user_id = ? AND session_id IS NOT ?",
                (user_id, keep),
            )
        )

    async def claim_idempotency_key(
        self, user_id: int, key: str, photo_id: int, now: datetime, expires_at: datetime
    ) -> KeyClaim:
        def claim() -> sqlite3.Row:
            with _transaction(self.conn):
                self.conn.execute(
                    "DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? "
                    "AND expires_ms <= ?",
                    (user_id, key, _ms(now)),
                )
                self.conn.execute(
                    "INSERT OR IGNORE INTO idempotency_keys "
                    "(user_id, key, photo_id, expires_ms, claimed_ms) VALUES (?, ?, ?, ?, ?)",
                    (user_id, key, photo_id, _ms(expires_at), _ms(now)),
                )
                claimed: sqlite3.Row = self.conn.execute(
                    "SELECT photo_id, claimed_ms, intent FROM idempotency_keys WHERE user_id = ? "
                    "AND key = ?",
                    (user_id, key),
                ).fetchone()
                return claimed

        row = await self._run(claim)
        intent = None if row["intent"] is None else codec.decode_photo(row["intent"])
        return KeyClaim(row["photo_id"], _at(row["claimed_ms"]), intent)

    async def take_over_idempotency_key(
        self,
        user_id: int,
        key: str,
        held: KeyClaim,
        photo_id: int,
        now: datetime,
        expires_at: datetime,
    ) -> bool:
        (count,) = await self._write(
            (
                (
                    "UPDATE idempotency_keys "
                    "SET photo_id = ?, claimed_ms = ?, expires_ms = ?, intent = NULL "
                    "WHERE user_id = ? AND key = ? AND photo_id = ? AND claimed_ms IS ?"
                ),
                (
                    photo_id,
                    _ms(now),
                    _ms(expires_at),
                    user_id,
                    key,
                    held.photo_id,
                    _ms(held.claimed_at),
                ),
            )
        )
        return count == 1

    async def renew_idempotency_key(
        self,
        user_id: int,
        key: str,
        photo_id: int,
        now: datetime,
        expires_at: datetime,
        intent: Photo | None = None,
    ) -> bool:
        record = None if intent is None else codec.encode_photo(intent)
        (count,) = await self._write(
            (
                (
                    "UPDATE idempotency_keys "
                    "SET claimed_ms = ?, expires_ms = ?, intent = COALESCE(?, intent) "
                    "WHERE user_id = ? AND key = ? AND photo_id = ?"
                ),
                (_ms(now), _ms(expires_at), record, user_id, key, photo_id),
            )
        )
        return count == 1

    async def release_idempotency_key(self, user_id: int, key: str, photo_id: int) -> None:
        await self._write(
            (
                "DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND photo_id = ?",
                (user_id, key, photo_id),
            )
        )

    # ---- deployment secrets --------------------------------------------------------

    async def server_key(self, name: str, candidate: bytes) -> bytes:
        def get_or_create() -> bytes:
            with _transaction(self.conn):
                self.conn.execute(
                    "INSERT OR IGNORE INTO server_keys (name, secret) VALUES (?, ?)",
                    (name, candidate),
                )
                secret: bytes = self.conn.execute(
                    "SELECT secret FROM server_keys WHERE name = ?", (name,)
                ).fetchone()[0]
                return secret

        return await self._run(get_or_create)

    # ---- leases and shared limits ----------------------------------------------------

    async def take_lease(self, name: str, holder: str, ttl_s: int, now: datetime) -> LeaseState:
        now_ms = round(now.timestamp() * 1000)

        def take() -> LeaseState:
            with _transaction(self.conn):  # BEGIN IMMEDIATE: read and write as one
                self.conn.execute("INSERT OR IGNORE INTO leases (name) VALUES (?)", (name,))
                row = self.conn.execute(
                    "SELECT holder, since_ms, expires_ms, high_ms FROM leases WHERE name = ?",
                    (name,),
                ).fetchone()
                held = row["holder"] is not None and row["expires_ms"] > now_ms
                if held and row["holder"] != holder:
                    return LeaseState(row["holder"], _at(row["since_ms"]), row["high_ms"])
                since = row["since_ms"] if row["holder"] == holder else now_ms
                self.conn.execute(
                    "UPDATE leases SET holder = ?, since_ms = ?, expires_ms = ? WHERE name = ?",
                    (holder, since, now_ms + ttl_s * 1000, name),
                )
                return LeaseState(holder, _at(since), row["high_ms"])

        return await self._run(take)

    async def take_over_lease(
        self, name: str, dead: str, holder: str, ttl_s: int, now: datetime
    ) -> LeaseState:
        now_ms = round(now.timestamp() * 1000)
        await self._write(
            (
                "UPDATE leases SET holder = ?, since_ms = ?, expires_ms = ? "
                "WHERE name = ? AND holder = ?",
                (holder, now_ms, now_ms + ttl_s * 1000, name, dead),
            )
        )
        state = await self.read_lease(name)
        return state if state is not None else LeaseState(None, None, 0)

    async def renew_lease(
        self, name: str, holder: str, ttl_s: int, high_ms: int, now: datetime
    ) -> bool:
        now_ms = round(now.timestamp() * 1000)
        (count,) = await self._write(
            (
                "UPDATE leases SET expires_ms = ?, high_ms = ? "
                "WHERE name = ? AND holder = ? AND expires_ms > ?",
                (now_ms + ttl_s * 1000, high_ms, name, holder, now_ms),
            )
        )
        return count == 1

    async def release_lease(self, name: str, holder: str, high_ms: int) -> None:
        await self._write(
            (
                "UPDATE leases SET holder = NULL, since_ms = NULL, expires_ms = NULL, "
                "high_ms = ? WHERE name = ? AND holder = ?",
                (high_ms, name, holder),
            )
        )

    async def read_lease(self, name: str) -> LeaseState | None:
        row = await self._one(
            "SELECT holder, since_ms, expires_ms, high_ms FROM leases WHERE name = ?", (name,)
        )
        if row is None:
            return None
        if row["holder"] is None or row["expires_ms"] <= _ms(datetime.now(UTC)):
            return LeaseState(None, None, row["high_ms"])
        return LeaseState(row["holder"], _at(row["since_ms"]), row["high_ms"])

    async def add_limit_hit(self, key: str, minute: int) -> object:
        def add() -> int:
            with _transaction(self.conn):
                hit = self.conn.execute(
                    "INSERT INTO limit_hits (key, minute) VALUES (?, ?)", (key, minute)
                ).lastrowid
                self.conn.execute("DELETE FROM limit_hits WHERE minute < ?", (minute - 1,))
                return int(hit or 0)

        return await self._run(add)

    async def remove_limit_hit(self, key: str, minute: int, hit: object) -> None:
        await self._write(("DELETE FROM limit_hits WHERE hit = ? AND key = ?", (hit, key)))

    async def limit_hits(self, key: str, minute: int, through: object = None) -> int:
        row = await self._one(
            "SELECT COUNT(*) FROM limit_hits WHERE key = ? AND minute = ? AND hit <= ?",
            (key, minute, MAX_ID if through is None else through),
        )
        return int(row[0]) if row else 0

    # ---- search -------------------------------------------------------------------

    async def search_terms(
        self, terms: Sequence[str], before: int | None, limit: int, budget: int
    ) -> TermHits:
        if not terms:
            return TermHits([], 0)
        cursor = MAX_ID if before is None else before
        # Walk the rarest word's postings, newest first, and probe the others per posting
        # by primary key: a chunk at a time, each its own call on the SQLite thread, so a
        # search of common words never holds it for long. The rarest: each word's
        # postings below the cursor counted up to RARITY_PROBE, in one call.
        rarity = await self._rarity(set(terms), cursor)
        first, *others = search.walk_order(terms, rarity)
        counted = sum(rarity.values())
        probes = "".join(
            " AND EXISTS (SELECT 1 FROM title_terms o WHERE o.term = ? AND o.photo_id = t.photo_id)"
            for _ in others
        )
        sql = (
            f"SELECT t.photo_id, 1{probes} FROM title_terms t WHERE t.term = ? "
            "AND t.photo_id < ? ORDER BY t.photo_id DESC LIMIT ?"
        )
        found: list[int] = []
        read = 0
        while True:
            size = min(SEARCH_CHUNK, max(1, budget - read))
            rows = await self._all(sql, [*others, first, cursor, size])
            read += len(rows)
            found += [r[0] for r in rows if r[1]]
            if len(found) >= limit:
                return TermHits(found[:limit], read, counted=counted)
            if len(rows) < size:
                return TermHits(found, read, counted=counted)
            cursor = rows[-1][0]
            if read >= budget:
                return TermHits(found, read, stopped_at=cursor, counted=counted)

    async def _rarity(self, terms: set[str], before: int) -> dict[str, int]:
        """Each term's postings below ``before``, counted up to ``RARITY_PROBE``: a range
        of the primary key each."""
        if len(terms) == 1:
            return dict.fromkeys(terms, 0)  # nothing to choose between
        ordered = sorted(terms)
        count = (
            "(SELECT COUNT(*) FROM (SELECT 1 FROM title_terms WHERE term = ? "
            "AND photo_id < ? LIMIT ?))"
        )
        row = await self._one(
            "SELECT " + ", ".join([count] * len(ordered)),
            [v for term in ordered for v in (term, before, search.RARITY_PROBE)],
        )
        counts = row or [0] * len(ordered)  # a SELECT of scalars has one row
        return {term: int(n) for term, n in zip(ordered, counts, strict=True)}

    # ---- likes --------------------------------------------------------------------

    async def like(self, photo_id: int, user_id: int, at: datetime) -> bool:
        (count,) = await self._write(
            (
                "INSERT OR IGNORE INTO likes (photo_id, user_id, created_ms) VALUES (?, ?, ?)",
                (photo_id, user_id, _ms(at)),
            )
        )
        return count == 1

    async def unlike(self, photo_id: int, user_id: int) -> bool:
        (count,) = await self._write(
            ("DELETE FROM likes WHERE photo_id = ? AND user_id = ?", (photo_id, user_id))
        )
        return count == 1

    async def like_counts(self, photo_ids: Sequence[int]) -> dict[int, int]:
        counts = dict.fromkeys(photo_ids, 0)
        if photo_ids:
            marks = ",".join("?" * len(photo_ids))
            rows = await self._all(
                f"SELECT photo_id, COUNT(*) FROM likes WHERE photo_id IN ({marks}) "
                "GROUP BY photo_id",
                list(photo_ids),
            )
            counts.update({r[0]: r[1] for r in rows})
        return counts

    async def liked_by(self, user_id: int, photo_ids: Sequence[int]) -> set[int]:
        if not photo_ids:
            return set()
        marks = ",".join("?" * len(photo_ids))
        rows = await self._all(
            f"SELECT photo_id FROM likes WHERE user_id = ? AND photo_id IN ({marks})",
            [user_id, *photo_ids],
        )
        return {r[0] for r in rows}

    async def likers(self, photo_id: int, after: int | None, limit: int) -> list[int]:
        rows = await self._all(
            "SELECT user_id FROM likes WHERE photo_id = ? AND user_id > ? ORDER BY user_id LIMIT ?",
            (photo_id, after or 0, limit),
        )
        return [r[0] for r in rows]

    # ---- comments -----------------------------------------------------------------

    async def add_comment(self, comment: Comment) -> bool:
        def add() -> bool:
            with _transaction(self.conn):
                held = self.conn.execute(
                    "SELECT author_id, text FROM comments WHERE photo_id = ? AND comment_id = ?",
                    (comment.photo_id, comment.id),
                ).fetchone()
                if held is not None:
                    if (held[0], held[1]) != (comment.author_id, comment.text):
                        raise Conflict(
                            f"comment id {comment.id} holds another comment; nothing was stored"
                        )
                    return False
                self.conn.execute(
                    "INSERT INTO comments (photo_id, comment_id, author_id, text, created_ms) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        comment.photo_id,
                        comment.id,
                        comment.author_id,
                        comment.text,
                        _ms(comment.created_at),
                    ),
                )
                return True

        return await self._run(add)

    async def get_comment(self, photo_id: int, comment_id: int) -> Comment | None:
        row = await self._one(
            "SELECT * FROM comments WHERE photo_id = ? AND comment_id = ?", (photo_id, comment_id)
        )
        return None if row is None else _comment(row)

    async def comments(self, photo_id: int, after: int | None, limit: int) -> list[Comment]:
        rows = await self._all(
            "SELECT * FROM comments WHERE photo_id = ? AND comment_id > ? "
            "ORDER BY comment_id LIMIT ?",
            (photo_id, after or 0, limit),
        )
        return [_comment(r) for r in rows]

    async def delete_comment(self, comment: Comment) -> bool:
        (count,) = await self._write(
            (
                "DELETE FROM comments WHERE photo_id = ? AND comment_id = ?",
                (comment.photo_id, comment.id),
            )
        )
        return count == 1

    async def comment_counts(self, photo_ids: Sequence[int]) -> dict[int, int]:
        counts = dict.fromkeys(photo_ids, 0)
        if photo_ids:
            marks = ",".join("?" * len(photo_ids))
            rows = await self._all(
                f"SELECT photo_id, COUNT(*) FROM comments WHERE photo_id IN ({marks}) "
                "GROUP BY photo_id",
                list(photo_ids),
            )
            counts.update({r[0]: r[1] for r in rows})
        return counts

    # ---- volumes (the packer) -----------------------------------------------------------

    async def switch_locators(
        self, photo_id: int, old: dict[str, str], new: dict[str, str]
    ) -> bool:
        def run() -> bool:
            with _transaction(self.conn):  # BEGIN IMMEDIATE: read and write as one
                row = self.conn.execute(
                    "SELECT record, deleted_ms FROM photos WHERE photo_id = ?", (photo_id,)
                ).fetchone()
                photo = (
                    None
                    if row is None
                    else codec.decode_photo(row["record"], _at(row["deleted_ms"]))
                )
                outcome = switch_outcome(photo, old, new)
                if isinstance(outcome, bool):
                    return outcome
                self.conn.execute(
                    "UPDATE photos SET record = ? WHERE photo_id = ?",
                    (codec.encode_photo(outcome), photo_id),
                )
                return True

        return await self._run(run)

    async def finish_video(
        self, photo_id: int, replaces: str | None, result: Rendition | str
    ) -> bool:
        def run() -> bool:
            with _transaction(self.conn):
                row = self.conn.execute(
                    "SELECT record, deleted_ms FROM photos WHERE photo_id = ?", (photo_id,)
                ).fetchone()
                photo = (
                    None
                    if row is None
                    else codec.decode_photo(row["record"], _at(row["deleted_ms"]))
                )
                outcome = video_outcome(photo, replaces, result)
                if isinstance(outcome, bool):
                    return outcome
                self.conn.execute(
                    "UPDATE photos SET record = ? WHERE photo_id = ?",
                    (codec.encode_photo(outcome), photo_id),
                )
                if isinstance(result, Rendition):  # its bytes are landed: the packer's
                    self.conn.execute(
                        "INSERT OR IGNORE INTO pack_queue (photo_id) VALUES (?)", (photo_id,)
                    )
                return True

        return await self._run(run)

    # ---- the transcode queue -------------------------------------------------------------

    async def queue_transcode(self, job: TranscodeJob) -> None:
        await self._write(
            (
                "INSERT OR IGNORE INTO transcode_jobs (photo_id, replaces, queued_ms, attempts) "
                "VALUES (?, ?, ?, 0)",
                (job.photo_id, job.replaces, _ms(job.queued_at)),
            )
        )

    async def transcode_jobs(self, after: int, limit: int) -> list[TranscodeJob]:
        rows = await self._all(
            "SELECT * FROM transcode_jobs WHERE photo_id > ? ORDER BY photo_id LIMIT ?",
            (after, limit),
        )
        return [_job(r) for r in rows]

    async def transcode_job(self, photo_id: int) -> TranscodeJob | None:
        row = await self._one("SELECT * FROM transcode_jobs WHERE photo_id = ?", (photo_id,))
        return None if row is None else _job(row)

    async def claim_transcode(
        self, job: TranscodeJob, holder: str, until: datetime
    ) -> TranscodeJob | None:
        (count,) = await self._write(
            (
                "UPDATE transcode_jobs SET holder = ?, lease_until_ms = ?, attempts = ? "
                "WHERE photo_id = ? AND attempts = ? AND lease_until_ms IS ? AND holder IS ?",
                (
                    holder,
                    _ms(until),
                    job.attempts + 1,
                    job.photo_id,
                    job.attempts,
                    _ms(job.lease_until),
                    job.holder,
                ),
            )
        )
        if not count:
            return None
        return TranscodeJob(
            job.photo_id, job.replaces, job.queued_at, job.attempts + 1, holder, _at(_ms(until))
        )

    async def renew_transcode(self, photo_id: int, holder: str, until: datetime) -> bool:
        (count,) = await self._write(
            (
                "UPDATE transcode_jobs SET lease_until_ms = ? WHERE photo_id = ? AND holder = ?",
                (_ms(until), photo_id, holder),
            )
        )
        return count == 1

    async def forget_transcode(self, photo_id: int) -> None:
        await self._write(("DELETE FROM transcode_jobs WHERE photo_id = ?", (photo_id,)))

    async def pack_queue(self) -> AsyncIterator[int]:
        after = -1
        while True:
            rows = await self._all(
                "SELECT photo_id FROM pack_queue WHERE photo_id > ? ORDER BY photo_id LIMIT ?",
                (after, SCAN_PAGE),
            )
            for row in rows:
                yield int(row[0])
            if len(rows) < SCAN_PAGE:
                return
            after = rows[-1][0]

    async def queue_for_packing(self, photo_ids: Sequence[int]) -> None:
        if photo_ids:
            queue = "INSERT OR IGNORE INTO pack_queue (photo_id) VALUES (?)"
            await self._write(*[(queue, (i,)) for i in photo_ids])

    async def unqueue_packed(self, photo_ids: Sequence[int]) -> None:
        if photo_ids:
            await self._write(
                *[("DELETE FROM pack_queue WHERE photo_id = ?", (i,)) for i in photo_ids]
            )

    # ---- content dedupe ------------------------------------------------------------------

    async def content_donor(self, sha256: str) -> int | None:
        row = await self._one("SELECT photo_id FROM content_index WHERE sha256 = ?", (sha256,))
        return None if row is None else int(row["photo_id"])

    async def set_content_donor(self, sha256: str, photo_id: int) -> None:
        await self._write(
            (
                "INSERT OR REPLACE INTO content_index (sha256, photo_id) VALUES (?, ?)",
                (sha256, photo_id),
            )
        )

    # ---- blocks ---------------------------------------------------------------------

    async def block(self, blocker_id: int, blocked_id: int, at: datetime) -> None:
        pairs = ((blocker_id, blocked_id), (blocked_id, blocker_id))
        await self._write(
            (
                "INSERT OR IGNORE INTO blocks (blocker_id, blocked_id, created_ms) "
                "VALUES (?, ?, ?)",
                (blocker_id, blocked_id, _ms(at)),
            ),
            *(
                ("DELETE FROM follows WHERE follower_id = ? AND followee_id = ?", pair)
                for pair in pairs
            ),
            *(
                ("DELETE FROM inbox_backfills WHERE reader_id = ? AND followee_id = ?", pair)
                for pair in pairs
            ),
            *(
                ("DELETE FROM follow_requests WHERE user_id = ? AND requester_id = ?", pair)
                for pair in pairs
            ),
        )

    async def unblock(self, blocker_id: int, blocked_id: int) -> bool:
        (count,) = await self._write(
            (
                "DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?",
                (blocker_id, blocked_id),
            )
        )
        return count == 1

    async def blocked(self, user_id: int, after: int | None, limit: int) -> list[int]:
        rows = await self._all(
            "SELECT blocked_id FROM blocks WHERE blocker_id = ? AND blocked_id > ? "
            "ORDER BY blocked_id LIMIT ?",
            (user_id, after or 0, limit),
        )
        return [r[0] for r in rows]

    async def blockers_among(self, user_id: int, among: Sequence[int]) -> set[int]:
        among = list(set(among))
        if not among:
            return set()
        marks = ",".join("?" * len(among))
        rows = await self._all(
            f"SELECT blocker_id FROM blocks WHERE blocked_id = ? AND blocker_id IN ({marks})",
            [user_id, *among],
        )
        return {r[0] for r in rows}

    async def blocked_among(self, user_id: int, among: Sequence[int]) -> set[int]:
        among = list(set(among))
        if not among:
            return set()
        marks = ",".join("?" * len(among))
        rows = await self._all(
            f"SELECT blocked_id FROM blocks WHERE blocker_id = ? AND blocked_id IN ({marks})",
            [user_id, *among],
        )
        return {r[0] for r in rows}

    # ---- reports, hidden items, the content blocklist ------------------------------

    async def add_report(self, report: Report) -> None:
        await self._write(
            (
                "INSERT OR REPLACE INTO reports "
                "(kind, item_id, reporter_id, reason, note, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (*report.key, report.reason, report.note, _ms(report.created_at)),
            )
        )

    async def reports(self, after: ReportKey | None, limit: int) -> list[Report]:
        rows = await self._all(
            "SELECT kind, item_id, reporter_id, reason, note, created_ms FROM reports "
            "WHERE (kind, item_id, reporter_id) > (?, ?, ?) "
            "ORDER BY kind, item_id, reporter_id LIMIT ?",
            (*(after or ("", 0, 0)), limit),
        )
        return [Report(r[0], r[1], r[2], r[3], r[4], _utc(r[5])) for r in rows]

    async def resolve_reports(self, kind: str, item_id: int) -> None:
        await self._write(("DELETE FROM reports WHERE kind = ? AND item_id = ?", (kind, item_id)))

    async def set_hidden(self, item_id: int, kind: str, at: datetime | None) -> None:
        if at is None:
            await self._write(("DELETE FROM hidden_items WHERE item_id = ?", (item_id,)))
            return
        await self._write(
            (
                "INSERT OR IGNORE INTO hidden_items (item_id, kind, hidden_ms) VALUES (?, ?, ?)",
                (item_id, kind, _ms(at)),
            )
        )

    async def hidden_among(self, item_ids: Sequence[int]) -> dict[int, str]:
        ids = list(set(item_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = await self._all(
            f"SELECT item_id, kind FROM hidden_items WHERE item_id IN ({marks})", ids
        )
        return {r[0]: r[1] for r in rows}

    async def add_to_blocklist(self, sha256: str, photo_id: int, at: datetime) -> None:
        await self._write(
            (
                "INSERT OR IGNORE INTO content_blocklist (sha256, photo_id, added_ms) "
                "VALUES (?, ?, ?)",
                (sha256, photo_id, _ms(at)),
            )
        )

    async def blocklisted(self, sha256: str) -> bool:
        row = await self._one("SELECT 1 FROM content_blocklist WHERE sha256 = ?", (sha256,))
        return row is not None

    # ---- activity inboxes ------------------------------------------------------------

    async def claim_event_id(
        self, user_id: int, action: str, candidate: int, until: datetime
    ) -> int:
        now_ms = round(time.time() * 1000)

        def claim() -> int:
            with _transaction(self.conn):
                held = self.conn.execute(
                    "SELECT event_id FROM activity_keys WHERE user_id = ? AND action = ? "
                    "AND until_ms > ?",
                    (user_id, action, now_ms),
                ).fetchone()
                if held is not None:
                    return int(held[0])
                self.conn.execute(
                    "INSERT OR REPLACE INTO activity_keys (user_id, action, event_id, until_ms) "
                    "VALUES (?, ?, ?, ?)",
                    (user_id, action, candidate, _ms(until)),
                )
                return candidate

        return await self._run(claim)

    async def add_event(self, event: ActivityEvent, until: datetime) -> None:
        now_ms = round(time.time() * 1000)
        if until.timestamp() * 1000 <= now_ms:
            return
        await self._write(
            (
                "INSERT OR REPLACE INTO activity (user_id, event_id, kind, actor_id, photo_id, "
                "comment_id, until_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    event.user_id,
                    event.event_id,
                    event.kind,
                    event.actor_id,
                    event.photo_id,
                    event.comment_id,
                    _ms(until),
                ),
            ),
            # Expired rows go with the next write to the same inbox (Cassandra's TTL).
            (
                "DELETE FROM activity WHERE user_id = ? AND until_ms <= ?",
                (event.user_id, now_ms),
            ),
            (
                "DELETE FROM activity_keys WHERE user_id = ? AND until_ms <= ?",
                (event.user_id, now_ms),
            ),
        )

    async def events(
        self, user_id: int, before: int | None, after: int, limit: int
    ) -> list[ActivityEvent]:
        rows = await self._all(
            "SELECT * FROM activity WHERE user_id = ? AND event_id < ? AND event_id > ? "
            "AND until_ms > ? ORDER BY event_id DESC LIMIT ?",
            (
                user_id,
                MAX_ID if before is None else before,
                after,
                round(time.time() * 1000),
                limit,
            ),
        )
        return [
            ActivityEvent(
                user_id, r["event_id"], r["kind"], r["actor_id"], r["photo_id"], r["comment_id"]
            )
            for r in rows
        ]

    async def seen_mark(self, user_id: int) -> int:
        row = await self._one("SELECT seen_id FROM activity_seen WHERE user_id = ?", (user_id,))
        return 0 if row is None else int(row[0])

    async def mark_seen(self, user_id: int, event_id: int) -> None:
        await self._write(
            (
                "INSERT INTO activity_seen (user_id, seen_id) VALUES (?, ?) ON CONFLICT (user_id) "
                "DO UPDATE SET seen_id = max(seen_id, excluded.seen_id)",
                (user_id, event_id),
            )
        )

    # ---- tags and title edits ----------------------------------------------------------

    async def index_title(self, photo_id: int, terms: Sequence[str], tags: Sequence[str]) -> None:
        await self._write(
            *[
                ("INSERT OR IGNORE INTO title_terms (term, photo_id) VALUES (?, ?)", (t, photo_id))
                for t in terms
            ],
            *[
                ("INSERT OR IGNORE INTO tag_photos (tag, photo_id) VALUES (?, ?)", (t, photo_id))
                for t in tags
            ],
        )

    async def set_title(self, photo_id: int, title: str) -> Photo | None:
        def run() -> Photo | None:
            with _transaction(self.conn):  # BEGIN IMMEDIATE: read and write as one
                row = self.conn.execute(
                    "SELECT record, deleted_ms FROM photos WHERE photo_id = ?", (photo_id,)
                ).fetchone()
                if row is None or row["deleted_ms"] is not None:
                    return None
                photo = codec.decode_photo(row["record"])
                if photo.title == title:
                    return photo
                edited = dataclasses.replace(photo, title=title)
                self.conn.execute(
                    "UPDATE photos SET record = ? WHERE photo_id = ?",
                    (codec.encode_photo(edited), photo_id),
                )
                return edited

        return await self._run(run)

    async def unindex_title(self, photo_id: int, terms: Sequence[str], tags: Sequence[str]) -> None:
        # Every row of the photo but those kept (the indexes by photo serve it): those of
        # its upload's title too, which an edit has replaced.
        await self._write(
            (
                f"DELETE FROM title_terms WHERE photo_id = ? AND term NOT IN "
                f"({', '.join('?' * len(terms))})",
                (photo_id, *terms),
            ),
            (
                f"DELETE FROM tag_photos WHERE photo_id = ? AND tag NOT IN "
                f"({', '.join('?' * len(tags))})",
                (photo_id, *tags),
            ),
        )

    async def tag_photo_ids(self, tag: str, before: int | None, limit: int) -> list[int]:
        rows = await self._all(
            "SELECT photo_id FROM tag_photos WHERE tag = ? AND photo_id < ? "
            "ORDER BY photo_id DESC LIMIT ?",
            (tag, MAX_ID if before is None else before, limit),
        )
        return [r[0] for r in rows]

    async def tags_from(self, prefix: str, after: str | None, limit: int) -> list[str]:
        # Text compares as UTF-8 bytes, in code point order: U+10FFFF follows every
        # letter or digit.
        rows = await self._all(
            "SELECT DISTINCT tag FROM tag_photos WHERE tag > ? AND tag >= ? AND tag < ? "
            "ORDER BY tag LIMIT ?",
            (after or "", prefix, prefix + "\U0010ffff", limit),
        )
        return [r[0] for r in rows]

    # ---- counts as a viewer sees them (a viewer's blocks left out) -------------------

    async def blockers(self, user_id: int, after: int | None, limit: int) -> list[int]:
        rows = await self._all(
            "SELECT blocker_id FROM blocks WHERE blocked_id = ? AND blocker_id > ? "
            "ORDER BY blocker_id LIMIT ?",
            (user_id, after or 0, limit),
        )
        return [r[0] for r in rows]

    async def _counted_among(
        self, query: str, keys: Sequence[int], among: Sequence[int]
    ) -> dict[int, int]:
        """``query`` (``... key IN ({keys}) AND other IN ({among}) GROUP BY key``, giving
        key and count) over chunks of ``among``, added up."""
        keys, counted = list(dict.fromkeys(keys)), dict[int, int]()
        unique = sorted(set(among))
        if not keys or not unique:
            return counted
        for i in range(0, len(unique), SQL_CHUNK):
            chunk = unique[i : i + SQL_CHUNK]
            sql = query.format(keys=",".join("?" * len(keys)), among=",".join("?" * len(chunk)))
            for key, n in await self._all(sql, [*keys, *chunk]):
                counted[key] = counted.get(key, 0) + n
        return counted

    async def follows_among(self, user_id: int, among: Sequence[int]) -> tuple[set[int], set[int]]:
        followers = await self._counted_among(
            "SELECT follower_id, 1 FROM follows WHERE followee_id IN ({keys}) "
            "AND follower_id IN ({among})",
            [user_id],
            among,
        )
        following = await self._counted_among(
            "SELECT followee_id, 1 FROM follows WHERE follower_id IN ({keys}) "
            "AND followee_id IN ({among})",
            [user_id],
            among,
        )
        return set(followers), set(following)

    async def like_counts_among(
        self, photo_ids: Sequence[int], user_ids: Sequence[int]
    ) -> dict[int, int]:
        return await self._counted_among(
            "SELECT photo_id, COUNT(*) FROM likes WHERE photo_id IN ({keys}) "
            "AND user_id IN ({among}) GROUP BY photo_id",
            photo_ids,
            user_ids,
        )

    async def comment_counts_among(
        self, photo_ids: Sequence[int], author_ids: Sequence[int]
    ) -> dict[int, int]:
        return await self._counted_among(
            "SELECT photo_id, COUNT(*) FROM comments WHERE photo_id IN ({keys}) "
            "AND author_id IN ({among}) GROUP BY photo_id",
            photo_ids,
            author_ids,
        )


def _job(row: sqlite3.Row) -> TranscodeJob:
    return TranscodeJob(
        photo_id=row["photo_id"],
        replaces=row["replaces"],
        queued_at=_utc(row["queued_ms"]),
        attempts=row["attempts"],
        holder=row["holder"],
        lease_until=_at(row["lease_until_ms"]),
    )


def _fill_hidden_photos(conn: sqlite3.Connection) -> None:
    """Schema 8's backfill, in its migration's transaction: a hidden_photos row for every
    photo stored so far that only followers, or only its owner, may see."""
    for (record,) in conn.execute("SELECT record FROM photos").fetchall():
        for sql, params in _hide(codec.decode_photo(record)):
            conn.execute(sql, params)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
