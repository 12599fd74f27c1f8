"""One transcode in a child process (``instastore.video.child``): its wall-time budget
fails the video with a reason, and leaves the caller's process untouched."""

from __future__ import annotations

import os

from instastore import media
from instastore.video import child

from .. import samples


async def test_a_transcode_past_its_wall_time_fails_the_video(tmp_path):
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)  # the child blocks opening it: a decoder that never returns
    made = await child.run(fifo, tmp_path / "out.mp4", media.video_limits(50_000_000), 60, 0.5)
    assert made == child.Failed("the transcode took longer than 0.5 s")


async def test_a_refused_video_fails_with_the_reason_a_client_may_read(tmp_path):
    source = tmp_path / "clip"
    source.write_bytes(samples.clip("mp4", "mpeg4", frames=24))
    limits = media.video_limits(64 * 48 - 1)
    made = await child.run(source, tmp_path / "out.mp4", limits, 60, 60)
    assert isinstance(made, child.Failed) and "over the limit of 3,071 pixels" in made.reason
    assert str(tmp_path) not in made.reason


async def test_a_transcode_past_its_cpu_time_fails_the_video(tmp_path):
    """RLIMIT_CPU stops the child (SIGXCPU) once it has used its budget: here 1 s, of a
    transcode that takes about 1.6 s of CPU (6 s of 720p: one of the heavier tests)."""
    source = tmp_path / "clip"
    source.write_bytes(samples.clip("mp4", "mpeg4", (1280, 720), 180, rate=30))
    made = await child.run(source, tmp_path / "out.mp4", media.video_limits(50_000_000), 1, 120)
    assert made == child.Failed("the transcode used more than 1 s of CPU")
