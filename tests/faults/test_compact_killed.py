"""`instastore compact` killed with SIGKILL at several moments, then run to the end:
every live photo's renditions read back byte-identical, no manifest, no volume that no
record points at and no needle copied twice is left (compaction's crash test, on local
files; tests/contract/test_compaction.py puts each step's state on both adapters)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from instastore.config import Settings
from instastore.lifecycle import purge, volumes
from instastore.storage import open_stores
from instastore.storage.keys import VOLUME_SUFFIX

from .test_pack_killed import make_photos, pack_command

# After 0.5 s: starting or reading; 1.5 s: writing volumes and switching; 3 and 8 s: in
# the run's one 10 s wait for record caches (every run that switched or finished a volume
# waits), before removing what it moved; 14 s: removing, or done. (On a loaded machine
# these drift; the two kills that must land in a step are made when the step prints.)
KILL_AFTER_S = (0.5, 1.5, 3.0, 8.0, 14.0)


def run_killed(
    command: list[str], *, when_printed: str | None = None, after_s: float = 0.0
) -> str | None:
    """Run ``command``; SIGKILL it once it printed ``when_printed`` (else ``after_s``
    after its start); what it printed, or None when it ended first."""
    run = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    printed = ""
    if when_printed is not None:
        assert run.stdout is not None
        for line in run.stdout:
            printed += line
            if when_printed in line:
                break
    else:
        time.sleep(after_s)
    if run.poll() is not None:
        run.communicate(timeout=60)
        return None
    run.send_signal(signal.SIGKILL)
    return printed + run.communicate(timeout=60)[0]


def compact_command(settings: Settings) -> list[str]:
    return [
        *(sys.executable, "-m", "instastore", "compact", "--threshold", "0.3"),
        *("--data-dir", str(settings.data_dir)),
        *("--volume-target-bytes", str(settings.volume_target_bytes)),
    ]


async def purge_half(settings: Settings, made: dict[int, dict[str, str]]) -> set[int]:
    """Purge every other photo; return the ids of the live ones."""
    stores = await open_stores(settings)
    try:
        doomed = sorted(made)[::2]
        for photo_id in doomed:
            photo = await stores.photos.get_photo(photo_id)
            await stores.photos.set_deleted(photo, datetime.now(UTC) - timedelta(days=60))
        report = await purge.purge(stores.photos, stores.blobs, settings)
        assert report.purged == len(doomed) and report.failed == 0
    finally:
        await stores.close()
    return set(made) - set(doomed)


async def check(settings: Settings, made: dict[int, dict[str, str]], live: set[int]) -> None:
    stores = await open_stores(settings)
    try:
        used: Counter[str] = Counter()
        for photo_id in live:
            photo = await stores.photos.get_photo(photo_id)
            for r in photo.renditions:
                data = b"".join([c async for c in volumes.open_locator(stores.blobs, r.locator)])
                assert hashlib.sha256(data).hexdigest() == made[photo_id][r.name]
                used[volumes.blob_of(r.locator)] += 1
        left = {e.key async for e in stores.blobs.entries()}
        assert left == set(used)  # no manifest, no dead volume, nothing landed
        needles = 0
        for key in used:
            volume_id = int(key.rsplit("/", 1)[1].removesuffix(VOLUME_SUFFIX))
            needles += len([n async for n in volumes.VolumeScan(stores.blobs, volume_id)])
        assert needles == sum(used.values())  # each live rendition's needle, once
    finally:
        await stores.close()


def test_compact_killed_at_several_moments_then_run_to_the_end(tmp_path):
    settings = dataclasses.replace(Settings(data_dir=tmp_path / "data"), volume_target_bytes=20_000)
    made = asyncio.run(make_photos(settings))
    packed = subprocess.run(  # no server runs: no record cache to wait for
        pack_command(settings, "--landed-grace", "0"), capture_output=True, text=True, timeout=300
    )
    assert packed.returncode == 0, packed.stderr
    live = asyncio.run(purge_half(settings, made))
    killed = []  # what each killed run had printed (unbuffered)
    # Killed the moment a step begins, whatever the machine's load: just after a volume
    # is written (its manifest left, no record switched), then while a later run finishes
    # that volume; then at moments in the run's other steps.
    for phrase in ("wrote volume", "finishing volume"):
        out = run_killed(compact_command(settings), when_printed=phrase)
        assert out is not None and phrase in out, f"the run ended before {phrase!r}:\n{out}"
        killed.append(out)
    for delay in KILL_AFTER_S:
        out = run_killed(compact_command(settings), after_s=delay)
        if out is not None:
            killed.append(out)
    assert len(killed) >= 3  # each new volume's grace wait alone takes 10 s
    assert any("wrote volume" in out for out in killed)  # killed between write and finish
    assert any("finishing volume" in out for out in killed)  # and while finishing one
    done = subprocess.run(compact_command(settings), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    asyncio.run(check(settings, made, live))
