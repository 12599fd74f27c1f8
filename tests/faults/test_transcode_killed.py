"""`instastore transcode` killed with SIGKILL at random moments while videos are uploaded,
then run to the end: every video has exactly one browser-safe rendition (one blob under
its key, named by its record), no job is left, and every original reads back
byte-identical. On local files; the queue's steps are held on both adapters by
tests/contract/test_transcode_queue.py.

INSTASTORE_TRANSCODE_KILL_UPLOADS sets the number of uploads (default 12, to stay near
a minute on a shared 2-core machine; 50 is the full run)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time

import av
import pytest

from instastore.config import Settings
from instastore.ids import IdGenerator
from instastore.lifecycle import volumes
from instastore.model import Visibility
from instastore.photos import Photos
from instastore.storage import open_stores
from instastore.uploads import Uploads, receive
from instastore.video.queue import rendition_key

from .. import samples
from ..factories import make_user

UPLOADS = int(os.environ.get("INSTASTORE_TRANSCODE_KILL_UPLOADS", "12"))
KILL_AFTER_S = (0.2, 3.0)  # a worker is killed this long after it starts (uniform)
MAX_KILLS = 60  # kills at the most before one of the killed workers finished a video
MAX_STRETCH = 10.0  # kill moments up to 30 s after a start, when nothing finishes sooner
pytestmark = pytest.mark.timeout(240 + 10 * UPLOADS)


def clip(i: int) -> bytes:
    """Video nobody plays in Chrome (MPEG-4 Part 2), each upload's bytes its own."""
    return samples.clip("mp4", "mpeg4", (64 + 2 * (i // 10), 48), frames=6 + i % 10)


async def upload_all(settings: Settings, clips: list[bytes], done: dict[int, str]) -> None:
    stores = await open_stores(settings)
    try:
        uploads = Uploads(
            stores.claims,
            stores.photos,
            stores.blobs,
            settings,
            IdGenerator(worker_id=21),
            Photos(stores.photos, stores.search, settings),
            stores.transcodes,
        )
        user = make_user()
        for i, data in enumerate(clips):

            async def chunks(data=data):
                yield data

            received = await receive(chunks(), len(data), uploads.tmp_dir)
            try:
                photo, _ = await uploads.create(
                    user, received, f"clip {i}", Visibility.PUBLIC, None
                )
            finally:
                received.discard()
            done[photo.id] = hashlib.sha256(data).hexdigest()
            await asyncio.sleep(random.uniform(0.0, 0.3))
    finally:
        await stores.close()


def worker(settings: Settings, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "instastore", "transcode"),
        *("--data-dir", str(settings.data_dir), "--transcode-workers", "2"),
        *extra,
    ]


async def check(settings: Settings, uploaded: dict[int, str]) -> None:
    stores = await open_stores(settings)
    try:
        assert await stores.transcodes.transcode_jobs(-1, 1000) == []
        for photo_id, sha in uploaded.items():
            photo = await stores.photos.get_photo(photo_id)
            assert photo.transcode is None, photo.transcode
            videos = [r for r in photo.renditions if r.name == "video"]
            assert [r.locator for r in videos] == [rendition_key(photo_id)]
            data = b"".join(
                [c async for c in volumes.open_locator(stores.blobs, videos[0].locator)]
            )
            assert len(data) == videos[0].size
            path = settings.data_dir / f"check-{photo_id}.mp4"
            path.write_bytes(data)
            with av.open(str(path)) as played:
                assert played.streams.video[0].codec_context.name == "h264"
                assert sum(1 for _ in played.decode(video=0)) > 0
            original = photo.rendition("original")
            read = [c async for c in volumes.open_locator(stores.blobs, original.locator)]
            assert hashlib.sha256(b"".join(read)).hexdigest() == sha
        made = sorted([e.key async for e in stores.blobs.entries() if ".web." in e.key])
        assert made == sorted(rendition_key(i) for i in uploaded)  # one each, no other
    finally:
        await stores.close()


async def ready_count(settings: Settings, uploaded: dict[int, str]) -> int:
    stores = await open_stores(settings)
    try:
        records = await stores.photos.get_photos(list(uploaded))
        return sum(1 for p in records.values() if p.rendition("video") is not None)
    finally:
        await stores.close()


def test_transcode_worker_killed_at_random_moments_over_many_uploads(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    rng = random.Random(int(os.environ.get("INSTASTORE_TRANSCODE_KILL_SEED", time.time())))
    clips = [clip(i) for i in range(UPLOADS)]
    uploaded: dict[int, str] = {}
    failure: list[BaseException] = []

    def uploader() -> None:
        try:
            asyncio.run(upload_all(settings, clips, uploaded))
        except BaseException as exc:  # reported by the test below
            failure.append(exc)

    thread = threading.Thread(target=uploader)
    thread.start()
    kills = ready = 0
    stretch = 1.0  # the kill moments' range, widened while no killed worker finished one
    # Killed at random moments until the uploads are done and a third of them were
    # killed, and (on a loaded machine a worker may start slower than it is killed) until
    # the killed workers finished some transcode: kills between stored work count most.
    while thread.is_alive() or kills < max(3, UPLOADS // 3) or (not ready and kills < MAX_KILLS):
        run = subprocess.Popen(
            worker(settings, "--watch"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(rng.uniform(KILL_AFTER_S[0], KILL_AFTER_S[1] * stretch))
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            kills += 1
        _, err = run.communicate(timeout=60)
        assert run.returncode == -signal.SIGKILL, err.decode()
        if not thread.is_alive():
            ready = asyncio.run(ready_count(settings, uploaded))
            if not ready:  # on a loaded machine a worker starts slower than it is killed
                stretch = min(stretch * 1.25, MAX_STRETCH)
    thread.join()
    assert not failure, failure
    assert len(uploaded) == UPLOADS
    assert ready > 0  # the killed workers did work, in MAX_KILLS kills at the most
    done = subprocess.run(worker(settings), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "0 queued" in done.stdout.splitlines()[-1]
    asyncio.run(check(settings, uploaded))
