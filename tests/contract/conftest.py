"""The contract suite's fixtures: every test here runs once per adapter.

``stores`` is parametrized over "embedded" (SQLite + local files in a temporary folder)
and "cluster" (Cassandra + HDFS of the running local cluster, in a keyspace and an HDFS
folder of this test session, dropped at the end)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from instastore import ids
from instastore.config import Settings
from instastore.model import Kind, Photo, Rendition, Visibility
from instastore.storage import open_stores
from instastore.storage.hdfs.webhdfs import WebHdfs


@pytest.fixture(scope="session")
def contract_cluster_settings(cluster_settings: Settings):
    """The session's migrated keyspace, and an HDFS folder of its own (removed after)."""
    settings = dataclasses.replace(cluster_settings, hdfs_root=f"/contract-{uuid.uuid4().hex[:8]}")
    yield settings

    async def remove_folder():
        client = WebHdfs(settings.webhdfs_url, settings.hdfs_user)
        try:
            await client.delete(settings.hdfs_root, recursive=True)
        finally:
            await client.close()

    asyncio.run(remove_folder())


@pytest.fixture(params=["embedded", "cluster"])
def adapter_settings(request, tmp_path) -> Settings:
    if request.param == "embedded":
        return Settings(data_dir=tmp_path / "data")
    return request.getfixturevalue("contract_cluster_settings")


@pytest.fixture
async def stores(adapter_settings):
    stores = await open_stores(adapter_settings)
    yield stores
    await stores.close()


_clock_ms = [ids.now_ms()]
_generator = ids.IdGenerator(worker_id=7)


def new_id(at_ms: int | None = None) -> int:
    """A fresh id; at a given time when ``at_ms`` is set (to cross bucket boundaries)."""
    if at_ms is None:
        return _generator.next_id()
    _clock_ms[0] += 1
    return ids.make_id(at_ms, 8, _clock_ms[0] % 1024)


def make_photo(
    owner_id: int, title: str = "a photo", photo_id: int | None = None, **fields
) -> Photo:
    photo_id = photo_id or new_id()
    return Photo(
        id=photo_id,
        owner_id=owner_id,
        title=title,
        kind=Kind.PHOTO,
        secret=ids.new_media_secret(),
        sha256="ab" * 32,
        created_at=datetime.fromtimestamp(ids.unix_ms_of(photo_id) / 1000, tz=UTC),
        visibility=Visibility.PUBLIC,
        renditions=(Rendition("thumb", f"t/{photo_id}/thumb", "image/jpeg", 1234, 150, 100),),
        width=1500,
        height=1000,
        **fields,
    )
