"""Sessions made before schema 009 (no id, so no place in their user's list) are no
longer accepted, on either store: "log out everywhere" could not end them. Their users
log in once more (docs/OPERATIONS.md, "Upgrading the schema")."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta

from instastore.schema import migrations

from instastore.config import Settings
from instastore.storage.embedded.metadata import DB_FILE, SqliteMetadataStore

from ..factories import new_id
from ..serving import TEST_COSTS

SESSIONS_VERSION = 9  # schema/*/009_sessions.*


def _database_before_sessions_had_ids(path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
    )
    for migration in migrations("sqlite")[: SESSIONS_VERSION - 1]:
        for statement in migration.statements():
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?, ?, ?)",
            (migration.version, migration.name, int(time.time() * 1000)),
        )
    expires_ms = int((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1000)
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, expires_ms) VALUES (?, ?, ?)",
        ("old-token-hash", new_id(), expires_ms),
    )
    conn.close()


async def test_sqlite_drops_sessions_made_before_they_had_ids(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", **TEST_COSTS)
    settings.data_dir.mkdir()
    _database_before_sessions_had_ids(settings.data_dir / DB_FILE)
    store = await SqliteMetadataStore.connect(settings)  # migrates to 009
    try:
        assert await store.get_session("old-token-hash", datetime.now(UTC)) is None
    finally:
        await store.close()


async def test_cassandra_refuses_sessions_made_before_they_had_ids(contract_cluster_settings):
    from instastore.storage.cassandra.metadata import CassandraMetadataStore

    store = await CassandraMetadataStore.connect(contract_cluster_settings)
    try:
        token_hash, now = uuid.uuid4().hex, datetime.now(UTC)
        # What a server older than 009 writes (statements.CREATE_SESSION before 009).
        await asyncio.to_thread(
            store.session.execute,
            f"INSERT INTO {contract_cluster_settings.cassandra_keyspace}.sessions "
            "(token_hash, user_id, created_at) VALUES (%s, %s, %s) USING TTL 86400",
            (token_hash, new_id(), now),
        )
        assert await store.get_session(token_hash, now) is None
    finally:
        await store.close()
