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


async def test_the_wide_reader_fan_posters_and_inboxes(tmp_path, monkeypatch):
    """``--wide``, ``--fan-posters`` and the fan-out: wide0 follows posters and quiet
    accounts, each fan<N> has N followers, and every seeded photo inside the inbox window
    is in each of its owner's followers' inboxes, with nothing left queued or owed."""
    monkeypatch.setattr(seed, "STATE_DIR", tmp_path / "state")
    settings = Settings(data_dir=tmp_path / "data")
    result = await seed.seed(
        settings,
        posters=2,
        readers=2,
        photos=12,
        pool=1,
        days=2,
        follows_per_reader=1,
        wide=5,
        quiet_photos=2,
        fan_posters=(3,),
    )
    assert result["quiet_photos"] == 6
    stores = await open_stores(settings)
    try:
        user = {
            name: (await stores.accounts.get_user_by_name(name)).id
            for name in ("reader0", "wide0", "fan3", "quiet0", "quiet2")
        }
        followees = set(await stores.graph.following(user["wide0"], None, 100))
        assert len(followees) == 5 and {user["quiet0"], user["quiet2"]} <= followees
        assert (await stores.graph.count_follows(user["fan3"]))[0] == 3
        by_owner: dict[int, set[int]] = {}
        async for photo in stores.photos.scan_photos():
            by_owner.setdefault(photo.owner_id, set()).add(photo.id)
        assert len(by_owner) == 5 and sum(map(len, by_owner.values())) == 18
        for reader in ("reader0", "wide0"):
            inbox = set(await stores.inbox.inbox_ids(user[reader], None, 0, 1000))
            follows = set(await stores.graph.following(user[reader], None, 100))
            assert inbox == set().union(*(by_owner.get(f, set()) for f in follows))
            assert await stores.inbox.inbox_backfills(user[reader]) == []
        assert await stores.inbox.queued_fanouts(100) == []
        marks = await stores.inbox.latest_marks(list(by_owner))
        assert all(newest == mark for newest, mark in marks.values())
        rows = 0
        for owner, photo_ids in by_owner.items():
            rows += len(photo_ids) * (await stores.graph.count_follows(owner))[0]
        assert result["inbox_rows_written"] == rows
    finally:
        await stores.close()


async def test_bulk_followers_are_resumable_on_both_adapters(adapter_settings):
    """The fan posters' followers (straight rows on Cassandra, the API's follow on the
    embedded store): all of them listed and counted once, however often it runs."""
    from instastore import ids

    followee = ids.IdGenerator(8190).next_id()  # of this test only, in a shared keyspace
    stores = await open_stores(adapter_settings)
    try:
        await seed.bulk_followers(stores, followee, 40)
        await seed.bulk_followers(stores, followee, 40)  # a resumed seed writes them again
        followers = await stores.graph.followers(followee, None, 100)
        assert sorted(followers) == sorted(seed.synthetic_follower(k) for k in range(40))
        assert (await stores.graph.count_follows(followee))[0] == 40
        assert await stores.graph.following(followers[0], None, 10) == [followee]
    finally:
        await stores.close()
