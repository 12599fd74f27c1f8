"""``instastore migrate``: create the keyspace and apply the CQL files not yet applied.

The keyspace uses NetworkTopologyStrategy with the replication factor from the settings.
Each applied file is recorded in ``schema_migrations``; applying again is a no-op. Every
DDL statement waits for schema agreement through the driver (no sleep loops), and a
disagreement is an error rather than a guess.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import PreparedStatement

from instastore import codec
from instastore.config import Settings
from instastore.errors import ConfigError, StorageError
from instastore.limits import USERNAME_PREFIX_CHARS
from instastore.model import Visibility
from instastore.schema import migrations
from instastore.storage.cassandra import statements as cql
from instastore.storage.cassandra.session import BATCH, MIN_TOKEN, idempotent, translate_errors

log = logging.getLogger(__name__)

SCHEMA_AGREEMENT_WAIT_S = 30
PACK_QUEUE_VERSION = 6  # 006_pack_queue.cql: applying it queues every photo stored so far
HIDDEN_PHOTOS_VERSION = 8  # 008_hidden_photos.cql: applying it fills the table
USERNAME_PREFIXES_VERSION = 11  # 011_comments.cql: applying it fills usernames_by_prefix
BACKFILL_PAGE = 500  # photo ids read per query of that backfill
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,47}")  # used with fullmatch: "$" allows a final "\n"


def keyspace_cql(settings: Settings) -> str:
    keyspace = settings.cassandra_keyspace
    if not _IDENTIFIER.fullmatch(keyspace):
        raise ConfigError(
            f"cassandra_keyspace must be a lower-case CQL identifier, not {keyspace!r}"
        )
    dc = settings.cassandra_local_dc.replace("'", "")
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', '{dc}': {settings.replication_factor}}}"
    )


def _ddl(session: Session, statement: str) -> None:
    with translate_errors("schema change"):
        result = session.execute(statement, execution_profile=BATCH)
    if not result.response_future.is_schema_agreed:
        agreed = session.cluster.control_connection.wait_for_schema_agreement(
            wait_time=SCHEMA_AGREEMENT_WAIT_S
        )
        if not agreed:
            raise StorageError(
                f"nodes did not agree on the schema within {SCHEMA_AGREEMENT_WAIT_S} s after: "
                f"{statement[:80]}"
            )


def migrate(
    session: Session, settings: Settings, progress: Callable[[str], object] = print
) -> list[str]:
    """Apply what is missing; return the names of the files applied now. Blocking: run
    it from the command line or in a worker thread."""
    keyspace = settings.cassandra_keyspace
    _ddl(session, keyspace_cql(settings))
    _ddl(
        session,
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations "
        "(version int PRIMARY KEY, name text, checksum text, applied_at timestamp)",
    )
    with translate_errors("reading schema_migrations"):
        rows = session.execute(
            f"SELECT version, name, checksum FROM {keyspace}.schema_migrations",
            execution_profile=BATCH,
        )
    applied = {row.version: row for row in rows}
    done = []
    with translate_errors("setting the keyspace"):  # session.set_keyspace, but unhurried
        session.execute(f"USE {keyspace}", execution_profile=BATCH)
    for migration in migrations("cql"):
        checksum = hashlib.sha256(migration.text.encode()).hexdigest()
        if migration.version in applied:
            if applied[migration.version].checksum != checksum:
                log.warning(
                    "schema file %03d_%s changed after it was applied; released files must not be "
                    "edited",
                    migration.version,
                    migration.name,
                )
            continue
        progress(f"applying {migration.version:03d}_{migration.name}.cql to keyspace {keyspace}")
        for statement in migration.statements():
            _ddl(session, statement)
        if migration.version == PACK_QUEUE_VERSION:
            _on_own_session(session, keyspace, progress, _backfill)
        if migration.version == HIDDEN_PHOTOS_VERSION:
            _on_own_session(session, keyspace, progress, _fill_hidden_photos)
        if migration.version == USERNAME_PREFIXES_VERSION:
            _on_own_session(session, keyspace, progress, _fill_username_prefixes)
        with translate_errors("recording a migration"):
            session.execute(
                f"INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_at) "
                "VALUES (%s, %s, %s, %s)",
                (migration.version, migration.name, checksum, datetime.now(UTC)),
                execution_profile=BATCH,
            )
        done.append(f"{migration.version:03d}_{migration.name}")
    return done


Backfill = Callable[[Session, str, Callable[[str], object]], None]


def _on_own_session(
    ddl_session: Session, keyspace: str, progress: Callable[[str], object], backfill: Backfill
) -> None:
    """Run a migration's backfill on a session of its own, with no keyspace set
    (statements prepared on the migration's, which has one, draw Cassandra's warning:
    ``statements.qualified``). Each is idempotent: a migration cut short is applied again
    whole."""
    with translate_errors("connecting for a migration's backfill"):
        session = ddl_session.cluster.connect()
    try:
        backfill(session, keyspace, progress)
    finally:
        session.shutdown()


def _prepare(session: Session, text: str, keyspace: str) -> PreparedStatement:
    """A backfill's statement, prepared on every node. A node that was down or restarting
    while the migration's tables were made learns of them from its peers moments later
    (schema agreement counts only the nodes that are up), and until then refuses the
    statement as naming an unknown table: that is waited out, within the schema wait."""
    deadline = time.monotonic() + SCHEMA_AGREEMENT_WAIT_S
    while True:
        try:
            return session.prepare(cql.qualified(text, keyspace))
        except InvalidRequest as exc:
            if "does not exist" not in str(exc) or time.monotonic() > deadline:
                raise
            log.info("a node lacks a new table yet; waiting for schema agreement: %s", exc)
            session.cluster.control_connection.wait_for_schema_agreement(
                wait_time=SCHEMA_AGREEMENT_WAIT_S
            )
            time.sleep(1.0)


def _fill_hidden_photos(session: Session, keyspace: str, progress: Callable[[str], object]) -> None:
    """Schema 008's backfill: a hidden_photos row for every live photo stored so far that
    only followers, or only its owner, may see (rows: writing one twice is harmless)."""
    scan = _prepare(session, cql.SCAN_PHOTOS, keyspace)
    hide = _prepare(session, cql.HIDE_PHOTO, keyspace)
    hide.is_idempotent = True  # a row: writing it twice is harmless
    after, read, hidden = MIN_TOKEN, 0, 0
    while True:
        with translate_errors("reading photo records for hidden_photos"):
            rows = list(session.execute(scan, (after, BACKFILL_PAGE), execution_profile=BATCH))
        photos = [
            codec.decode_photo(row.record)
            for row in rows
            if row.record is not None and row.deleted_at is None
        ]
        rows_to_write = [
            (p.owner_id, p.visibility.value, p.id)
            for p in photos
            if p.visibility is not Visibility.PUBLIC
        ]
        with translate_errors("writing hidden_photos rows"):
            for ok, result in execute_concurrent_with_args(
                session, hide, rows_to_write, concurrency=32
            ):
                if not ok:
                    raise result
        read, hidden = read + len(rows), hidden + len(rows_to_write)
        if read and (len(rows) < BACKFILL_PAGE or read % 100_000 < BACKFILL_PAGE):
            progress(f"hidden photos: {read:,} record(s) read, {hidden:,} hidden")
        if len(rows) < BACKFILL_PAGE:
            return
        after = rows[-1].t


def _fill_username_prefixes(
    session: Session, keyspace: str, progress: Callable[[str], object]
) -> None:
    """Schema 011's backfill: a usernames_by_prefix row for every name claimed so far
    (rows: writing one twice is harmless, and a sign-up meanwhile writes its own)."""
    scan = _prepare(session, cql.SCAN_USERNAMES, keyspace)
    index = _prepare(session, cql.INDEX_USERNAME, keyspace)
    index.is_idempotent = True
    after, read = MIN_TOKEN, 0
    while True:
        with translate_errors("reading usernames for usernames_by_prefix"):
            rows = list(session.execute(scan, (after, BACKFILL_PAGE), execution_profile=BATCH))
        rows_to_write = [
            (r.username[:USERNAME_PREFIX_CHARS], r.username, r.user_id)
            for r in rows
            if r.user_id is not None
        ]
        with translate_errors("writing usernames_by_prefix rows"):
            for ok, result in execute_concurrent_with_args(
                session, index, rows_to_write, concurrency=32
            ):
                if not ok:
                    raise result
        read += len(rows)
        if read and (len(rows) < BACKFILL_PAGE or read % 100_000 < BACKFILL_PAGE):
            progress(f"usernames by prefix: {read:,} name(s) indexed")
        if len(rows) < BACKFILL_PAGE:
            return
        after = rows[-1].t


def _backfill(session: Session, keyspace: str, progress: Callable[[str], object]) -> None:
    """Schema 006's backfill: every photo stored so far joins the pack queue, so that the
    queue holds every record with landed blobs from the start (the packer drops the packed
    ones on its next run)."""
    scan = _prepare(session, cql.SCAN_PHOTO_IDS, keyspace)
    queue = _prepare(session, cql.QUEUE_PACK, keyspace)
    queue_bucket = _prepare(session, cql.QUEUE_PACK_BUCKET, keyspace)
    queue.is_idempotent = idempotent(cql.QUEUE_PACK)  # single rows: the request timeout will do
    queue_bucket.is_idempotent = idempotent(cql.QUEUE_PACK_BUCKET)
    after, queued = MIN_TOKEN, 0
    while True:
        with translate_errors("reading photo ids for the pack queue"):
            rows = list(session.execute(scan, (after, BACKFILL_PAGE), execution_profile=BATCH))
        photo_ids = [row.photo_id for row in rows]
        buckets = {photo_id >> cql.PACK_BUCKET_SHIFT for photo_id in photo_ids}
        with translate_errors("queueing photos for packing"):
            for ok, result in execute_concurrent_with_args(
                session, queue_bucket, [(b,) for b in sorted(buckets)], concurrency=32
            ) + execute_concurrent_with_args(
                session,
                queue,
                [(i >> cql.PACK_BUCKET_SHIFT, i) for i in photo_ids],
                concurrency=32,
            ):
                if not ok:
                    raise result
        queued += len(photo_ids)
        if queued and (len(rows) < BACKFILL_PAGE or queued % 100_000 < BACKFILL_PAGE):
            progress(f"pack queue: {queued:,} photo(s) queued")
        if len(rows) < BACKFILL_PAGE:
            return
        after = rows[-1].t


def pending(session: Session, settings: Settings) -> list[str]:
    """The migrations not applied yet (all of them if the keyspace does not exist).

    Asked of Cassandra, not of the driver's schema metadata: a driver that connects
    while the nodes' schema versions disagree (a node restarting, say) skips loading the
    schema, and its metadata then lacks keyspaces that exist; a server starting then took
    a migrated keyspace for an empty one and refused to start."""
    keyspace = settings.cassandra_keyspace
    every = [f"{m.version:03d}_{m.name}" for m in migrations("cql")]
    with translate_errors("reading schema_migrations"):
        try:
            rows = session.execute(
                f"SELECT version FROM {keyspace}.schema_migrations", execution_profile=BATCH
            )
        except InvalidRequest:  # no such keyspace or table: nothing is applied
            return every
        versions = {row.version for row in rows}
    return [name for name in every if int(name[:3]) not in versions]
