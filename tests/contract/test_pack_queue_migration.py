"""Schema 006 queues every photo stored before it, on both adapters: a store migrated to
005 with photos in it, then to 006, has every photo in the pack queue (SQLite: the
migration's INSERT ... SELECT; Cassandra: the paged backfill of ``instastore migrate``),
and the packer then packs the old landed photos and drops the rest from the queue."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import uuid
from datetime import timedelta

import pytest

from instastore.config import Settings
from instastore.lifecycle import packing, volumes
from instastore.storage import open_stores
from instastore.storage.embedded.metadata import DB_FILE

from ..factories import land_photos

SIZES = {"original": 900, "thumb": 100}


async def _made_before_006(settings: Settings) -> dict[int, dict[str, str]]:
    """Landed photos, saved while the store had no pack queue (the queue emptied after)."""
    stores = await open_stores(settings)
    try:
        made = await land_photos(stores, 5, SIZES)
        await stores.photos.unqueue_packed(list(made))
        assert not {i async for i in stores.photos.pack_queue()} & set(made)
    finally:
        await stores.close()
    return made


async def _check_queued_then_packed(settings: Settings, made: dict[int, dict[str, str]]) -> None:
    stores = await open_stores(settings)
    try:
        assert set(made) <= {i async for i in stores.photos.pack_queue()}
        await packing.pack(
            stores.photos, stores.blobs, settings, min_age=timedelta(minutes=30), landed_grace_s=0
        )
        for photo in (await stores.photos.get_photos(list(made))).values():
            assert all(volumes.is_needle(r.locator) for r in photo.renditions)
        assert not {i async for i in stores.photos.pack_queue()} & set(made)
    finally:
        await stores.close()


def test_sqlite_006_queues_the_photos_stored_before_it(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    made = asyncio.run(_made_before_006(settings))
    with sqlite3.connect(tmp_path / "data" / DB_FILE) as db:  # back to schema 005
        db.execute("DROP TABLE pack_queue")
        db.execute("DELETE FROM schema_migrations WHERE version = 6")
    asyncio.run(_check_queued_then_packed(settings, made))  # opening migrates to 006


@pytest.mark.cassandra
@pytest.mark.hdfs
def test_cassandra_006_queues_the_photos_stored_before_it(cluster_settings):
    from instastore.storage.cassandra.migrate import migrate
    from instastore.storage.cassandra.session import build_cluster

    settings = dataclasses.replace(
        cluster_settings,
        cassandra_keyspace=f"queue006_{uuid.uuid4().hex[:8]}",
        hdfs_root=f"/queue006-{uuid.uuid4().hex[:8]}",
    )
    driver = build_cluster(settings)
    session = driver.connect()
    try:
        migrate(session, settings, progress=lambda line: None)
        made = asyncio.run(_made_before_006(settings))
        session.execute(
            f"DELETE FROM {settings.cassandra_keyspace}.schema_migrations WHERE version = 6"
        )
        lines: list[str] = []
        assert migrate(session, settings, progress=lines.append) == ["006_pack_queue"]
        assert any(line.startswith("pack queue:") for line in lines), lines
        asyncio.run(_check_queued_then_packed(settings, made))
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
        driver.shutdown()
        asyncio.run(_remove_root(settings))


async def _remove_root(settings: Settings) -> None:
    from instastore.storage.hdfs.webhdfs import WebHdfs

    client = WebHdfs(settings.webhdfs_url, settings.hdfs_user)
    try:
        await client.delete(settings.hdfs_root, recursive=True)
    finally:
        await client.close()
