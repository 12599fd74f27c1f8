"""`instastore gc` killed with SIGKILL in the middle of removing orphans, then run to the
end (the crash test for gc, on local files): every packed photo reads back
byte-identical, every orphan (old landed blobs nobody points at, a volume nobody points
into) is gone, and a last run finds nothing more to remove."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

from instastore.config import Settings
from instastore.lifecycle import packing
from instastore.limits import ORPHAN_GRACE
from instastore.storage import open_stores
from instastore.storage.keys import volume_key

from ..factories import land_photos, one, read_back

PHOTOS = 6
ORPHANS = 400
SIZES = {"original": 3000, "large": 900, "thumb": 200}
KILL_AFTER_REMOVALS = (1, 60, 150)  # killed after this many "removed orphan" lines


async def make_store(settings: Settings) -> tuple[dict[int, dict[str, str]], set[str]]:
    """Packed photos, plus orphans older than gc's grace: landed blobs and a volume."""
    stores = await open_stores(settings)
    try:
        made = await land_photos(stores, PHOTOS, SIZES)
        await packing.pack(
            stores.photos, stores.blobs, settings, min_age=timedelta(0), landed_grace_s=0
        )
        orphans = {f"0/orphan-{i}.jpg" for i in range(ORPHANS)}
        orphans.add(volume_key(12345))
        for key in orphans:
            await stores.blobs.put(key, one(os.urandom(64)))
    finally:
        await stores.close()
    old = time.time() - ORPHAN_GRACE.total_seconds() - 3600
    for key in orphans:  # local files: the blob's own age is its file's mtime
        os.utime(settings.data_dir / "blobs" / key, (old, old))
    return made, orphans


def gc_command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "instastore", "gc", "--data-dir", str(settings.data_dir)]


def run_until(settings: Settings, removals: int) -> bool:
    """Run gc, SIGKILL it once it has reported ``removals`` removals; whether it was killed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    seen = 0
    with subprocess.Popen(gc_command(settings), stdout=subprocess.PIPE, text=True, env=env) as run:
        assert run.stdout is not None
        for line in run.stdout:
            seen += line.startswith("removed orphan blob")
            if seen >= removals:
                run.send_signal(signal.SIGKILL)
                break
    return seen >= removals


async def check(settings: Settings, made: dict[int, dict[str, str]]) -> None:
    stores = await open_stores(settings)
    try:
        used = await read_back(stores, made)
        assert {e.key async for e in stores.blobs.entries()} == used
    finally:
        await stores.close()


def test_gc_killed_while_removing_orphans_then_run_to_the_end(tmp_path):
    settings = dataclasses.replace(Settings(data_dir=tmp_path / "data"), volume_target_bytes=9000)
    made, orphans = asyncio.run(make_store(settings))
    killed = [run_until(settings, n) for n in KILL_AFTER_REMOVALS]
    assert all(killed), killed  # each run was cut off in the middle of its removals
    done = subprocess.run(gc_command(settings), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    removed = sum(line.startswith("removed orphan blob") for line in done.stdout.splitlines())
    assert 0 < removed <= len(orphans) - sum(KILL_AFTER_REMOVALS)
    asyncio.run(check(settings, made))
    again = subprocess.run(gc_command(settings), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "removed orphan blob" not in again.stdout
