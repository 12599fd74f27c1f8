"""`instastore fanout` killed with SIGKILL in the middle of fanning a poster of 5,000
followers out, on the real cluster: before it runs again every follower's timeline is
already complete (the merge reads the poster's rows past its mark), and once it has run
to the end every follower's inbox holds each photo once, the mark is raised, the queue
is empty, and the timelines are the same."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

from instastore.fanout import Fanout
from instastore.model import User
from instastore.photos import Photos
from instastore.storage import open_stores
from instastore.timeline import Timeline

from ..factories import make_photo, new_id

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

FOLLOWERS = 5_000
PHOTOS = 3
KILL_AFTER_LINES = 2  # progress lines (a page of 1,000 followers each) before the kill
CHECKED = 40  # followers whose whole timeline is read, half each side of the kill


def fanout_command(settings, owner_id: int) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "INSTASTORE_DATA_DIR": str(settings.data_dir),
        "INSTASTORE_CASSANDRA_HOSTS": settings.cassandra_hosts,
        "INSTASTORE_CASSANDRA_PORT": str(settings.cassandra_port),
        "INSTASTORE_CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
        "INSTASTORE_WEBHDFS_URL": settings.webhdfs_url,
        "INSTASTORE_HDFS_ROOT": settings.hdfs_root,
    }
    command = [sys.executable, "-m", "instastore", "fanout", "--owner", str(owner_id)]
    return command, env


def kill_midway(command: list[str], env: dict[str, str]) -> int:
    """Run the fan-out, SIGKILL it after KILL_AFTER_LINES progress lines; its exit code."""
    lines = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as run:
        assert run.stdout is not None
        for line in run.stdout:
            lines += "follower(s)" in line
            if lines == KILL_AFTER_LINES:
                run.send_signal(signal.SIGKILL)
                break
        return run.wait(timeout=60)


async def timeline_ids(stores, settings, reader_id: int) -> list[int]:
    """The reader's whole "recent" timeline, through a timeline with nothing cached."""
    photos = Photos(stores.photos, stores.search, settings)
    fanout = Fanout(stores.inbox, stores.graph, stores.photos, settings)
    timeline = Timeline(
        stores.graph,
        stores.photos,
        stores.likes,
        stores.accounts,
        settings,
        photos,
        inbox=stores.inbox,
        fanout=fanout,
    )
    reader = User(reader_id, f"r{reader_id}", "x")
    shown: list[int] = []
    cursor = None
    while True:
        page = await timeline.page(reader, "recent", cursor, 2)
        shown += [p.id for p in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    await fanout.drain()  # the backfill the page started, if any
    return shown


async def gather_in_chunks(coros, size: int = 200) -> list:
    out = []
    for start in range(0, len(coros), size):
        out += await asyncio.gather(*coros[start : start + size])
    return out


async def test_a_fan_out_killed_midway_loses_nothing_and_duplicates_nothing(
    contract_cluster_settings,
):
    settings = contract_cluster_settings
    stores = await open_stores(settings)
    try:
        poster = User(new_id(), f"poster_{uuid.uuid4().hex[:8]}", "x")
        await stores.accounts.create_user(poster)
        followers = sorted(new_id() for _ in range(FOLLOWERS))
        now = datetime.now(UTC).replace(microsecond=0)  # as the store keeps it, to the ms
        await gather_in_chunks([stores.graph.follow(f, poster.id, now) for f in followers])
        # Their follows are old news: no backfill owed (the fan-out alone fills inboxes).
        await gather_in_chunks([stores.inbox.forget_backfill(f, poster.id, now) for f in followers])
        photos = [make_photo(poster.id, f"p{n}") for n in range(PHOTOS)]
        for photo in photos:
            await stores.photos.save_photo(photo, [])
        expected = sorted((p.id for p in photos), reverse=True)

        command, env = fanout_command(settings, poster.id)
        returncode = await asyncio.to_thread(kill_midway, command, env)
        assert returncode == -signal.SIGKILL, "the fan-out ended before it was killed"

        # Cut short: the mark is not raised, the queue still holds every photo, and some
        # followers' inboxes hold the photos while others hold nothing.
        assert await stores.inbox.latest_marks([poster.id]) == {poster.id: (expected[0], 0)}
        assert await stores.inbox.pending_fanouts(poster.id) == sorted(expected)
        inboxes = await gather_in_chunks(
            [stores.inbox.inbox_ids(f, None, 0, 10) for f in followers]
        )
        filled = [f for f, got in zip(followers, inboxes, strict=True) if got == expected]
        empty = [f for f, got in zip(followers, inboxes, strict=True) if not got]
        assert filled and empty, (len(filled), len(empty))
        assert len(filled) + len(empty) >= FOLLOWERS - PHOTOS * 64  # rows in flight: few
        rng = random.Random(poster.id)
        checked = rng.sample(filled, CHECKED // 2) + rng.sample(empty, CHECKED // 2)
        for reader in checked:
            assert await timeline_ids(stores, settings, reader) == expected, reader

        # Run again, to the end.
        finished = await asyncio.to_thread(
            subprocess.run, command, env=env, capture_output=True, text=True, timeout=600
        )
        assert finished.returncode == 0, finished.stderr
        assert f"fanned out owner {poster.id}" in finished.stdout
        assert await stores.inbox.latest_marks([poster.id]) == {
            poster.id: (expected[0], expected[0])
        }
        assert await stores.inbox.pending_fanouts(poster.id) == []
        inboxes = await gather_in_chunks(
            [stores.inbox.inbox_ids(f, None, 0, 10) for f in followers]
        )
        assert all(got == expected for got in inboxes)
        for reader in checked:
            assert await timeline_ids(stores, settings, reader) == expected, reader
    finally:
        await stores.close()
