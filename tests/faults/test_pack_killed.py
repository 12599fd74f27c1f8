"""`instastore pack` killed with SIGKILL at several moments, then run to the end: every
photo's renditions read back byte-identical from needles, no landed blob, no manifest
and no volume that no record points at is left (the packer's crash test, on local files;
tests/contract/test_packing.py puts each step's state on both adapters)."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
import sys
import time

from instastore.config import Settings
from instastore.storage import open_stores

from ..factories import land_photos, read_back

# After 0.5 s: starting or reading; 1.5 s: writing volumes and switching; 3 and 8 s: in
# the run's one 10 s wait for record caches (every run that switched or finished a volume
# waits), before removing what it moved; 14 s: removing, or done.
KILL_AFTER_S = (0.5, 1.5, 3.0, 8.0, 14.0)
PHOTOS = 9
RENDITION_BYTES = {"original": 5000, "large": 1200, "thumb": 300}


async def make_photos(settings: Settings) -> dict[int, dict[str, str]]:
    """Landed photos an hour old; sha256 of each rendition by photo and name."""
    stores = await open_stores(settings)
    try:
        return await land_photos(stores, PHOTOS, RENDITION_BYTES)
    finally:
        await stores.close()


def pack_command(settings: Settings, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "instastore", "pack", "--min-age", "0"),
        *("--data-dir", str(settings.data_dir)),
        *("--volume-target-bytes", str(settings.volume_target_bytes)),
        *extra,
    ]


async def check(settings: Settings, made: dict[int, dict[str, str]]) -> None:
    stores = await open_stores(settings)
    try:
        used = await read_back(stores, made, packed=True)
        left = {e.key async for e in stores.blobs.entries()}
        assert left == used  # no landed blob, no manifest, no dead volume
    finally:
        await stores.close()


def test_pack_killed_at_several_moments_then_run_to_the_end(tmp_path):
    settings = dataclasses.replace(Settings(data_dir=tmp_path / "data"), volume_target_bytes=20_000)
    made = asyncio.run(make_photos(settings))
    kills = 0
    for delay in KILL_AFTER_S:
        run = subprocess.Popen(
            pack_command(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(delay)
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            kills += 1
        run.communicate(timeout=60)
    assert kills >= 3  # each run that moved anything waits 10 s before removing it
    done = subprocess.run(pack_command(settings), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "removed 0 dead volume(s)" in done.stdout.splitlines()[-1]
    asyncio.run(check(settings, made))
