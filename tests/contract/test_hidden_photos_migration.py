"""Schema 008 counts the photos stored before it, on both adapters: a store whose
hidden_photos rows are gone (as before 008), migrated again, counts each visibility of
the photos it holds (SQLite: in the migration's transaction; Cassandra: the paged
backfill of ``instastore migrate``). Deleted photos are not counted."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import uuid
from datetime import UTC, datetime

import pytest

from instastore.config import Settings
from instastore.model import PhotoCounts, Visibility
from instastore.storage import open_stores
from instastore.storage.embedded.metadata import DB_FILE

from ..factories import make_photo, new_id

EXPECTED = PhotoCounts(5, followers=1, private=2)


async def _save_some(settings: Settings) -> int:
    """An owner's photos: 2 public, 1 followers-only, 2 private and a deleted private one."""
    owner = new_id()
    stores = await open_stores(settings)
    try:
        for visibility, n in (
            (Visibility.PUBLIC, 2),
            (Visibility.FOLLOWERS, 1),
            (Visibility.PRIVATE, 3),
        ):
            for _ in range(n):
                photo = make_photo(owner, visibility=visibility)
                await stores.photos.save_photo(photo, [])
        await stores.photos.set_deleted(photo, datetime.now(UTC))
        assert await stores.photos.count_photos(owner) == EXPECTED
    finally:
        await stores.close()
    return owner


async def _count(settings: Settings, owner: int) -> PhotoCounts:
    stores = await open_stores(settings)
    try:
        return await stores.photos.count_photos(owner)
    finally:
        await stores.close()


def test_sqlite_008_counts_the_photos_stored_before_it(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    owner = asyncio.run(_save_some(settings))
    with sqlite3.connect(tmp_path / "data" / DB_FILE) as db:  # back to schema 007
        db.execute("DROP TABLE hidden_photos")
        db.execute("DELETE FROM schema_migrations WHERE version = 8")
    assert asyncio.run(_count(settings, owner)) == EXPECTED  # opening migrates to 008


@pytest.mark.cassandra
def test_cassandra_008_counts_the_photos_stored_before_it(cluster_settings):
    from instastore.storage.cassandra.migrate import migrate
    from instastore.storage.cassandra.session import build_cluster

    settings = dataclasses.replace(
        cluster_settings, cassandra_keyspace=f"hidden008_{uuid.uuid4().hex[:8]}"
    )
    keyspace = settings.cassandra_keyspace
    driver = build_cluster(settings)
    session = driver.connect()
    try:
        migrate(session, settings, progress=lambda line: None)
        owner = asyncio.run(_save_some(settings))
        session.execute(f"TRUNCATE {keyspace}.hidden_photos", timeout=60)
        session.execute(f"DELETE FROM {keyspace}.schema_migrations WHERE version = 8")
        lines: list[str] = []
        assert migrate(session, settings, progress=lines.append) == ["008_hidden_photos"]
        assert any(line.startswith("hidden photos:") for line in lines), lines
        assert asyncio.run(_count(settings, owner)) == EXPECTED
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        driver.shutdown()
