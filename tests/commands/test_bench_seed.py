"""`python -m bench seed` resumes only its own store: the checkpoint is keyed by the
store's full identity and checked against the store before it is trusted."""

from __future__ import annotations

import dataclasses
import shutil

from bench import seed
from instastore.config import Settings
from instastore.errors import NotFound
from instastore.storage import open_stores

SMALL = dict(posters=1, readers=1, photos=5, pool=1, days=2, follows_per_reader=1)


async def run_seed(settings: Settings) -> None:
    await seed.seed(settings, **SMALL)


async def every_blob_is_there(settings: Settings) -> int:
    """How many photos the store has; fails if one points at a missing blob."""
    stores = await open_stores(settings)
    try:
        photos = [p async for p in stores.photos.scan_photos()]
        for photo in photos:
            for rendition in photo.renditions:
                try:
                    await stores.blobs.size(rendition.locator)
                except NotFound:
                    raise AssertionError(
                        f"photo {photo.id} points at missing blob {rendition.locator}"
                    ) from None
        return len(photos)
    finally:
        await stores.close()


async def test_two_stores_with_the_same_folder_name_do_not_share_a_checkpoint(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(seed, "STATE_DIR", tmp_path / "state")
    first, second = (
        Settings(data_dir=tmp_path / "a" / "data"),
        Settings(data_dir=tmp_path / "b" / "data"),
    )
    await run_seed(first)
    await run_seed(second)
    assert await every_blob_is_there(first) == 5
    assert await every_blob_is_there(second) == 5


async def test_a_checkpoint_of_a_wiped_store_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setattr(seed, "STATE_DIR", tmp_path / "state")
    settings = Settings(data_dir=tmp_path / "data")
    await run_seed(settings)
    shutil.rmtree(tmp_path / "data")  # the same store identity, new and empty
    await run_seed(settings)
    assert await every_blob_is_there(settings) == 5


def test_cluster_stores_differ_by_keyspace_hdfs_url_and_root():
    base = Settings(
        cassandra_hosts="127.0.0.1", webhdfs_url="http://127.0.0.1:9870", cassandra_keyspace="bench"
    )
    others = [
        dataclasses.replace(base, hdfs_root="/elsewhere"),
        dataclasses.replace(base, webhdfs_url="http://10.0.0.2:9870"),
        dataclasses.replace(base, cassandra_hosts="10.0.0.3"),
        dataclasses.replace(base, cassandra_keyspace="bench2"),
    ]
    identities = {seed.store_identity(s) for s in [base, *others]}
    assert len(identities) == 5
