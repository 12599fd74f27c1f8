"""One transcode in a child process (``instastore.video.child``): its wall-time budget
fails the video with a reason, and leaves the caller's process untouched."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

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


def _children_running(module: str) -> list[int]:
    """The pids of this process's children running ``python -m <module>``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and module.encode() in cmdline:
            found.append(int(entry.name))
    return found


async def test_a_decoder_that_crashes_fails_the_video_not_its_worker(tmp_path):
    """A decoder crashing on hostile bytes (SIGSEGV) ends the child, never the worker's
    process: the video fails with a reason the owner reads. The child is stopped while it
    blocks on its input, then sent the signal a crashing decoder gets from the kernel."""
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)
    limits = media.video_limits(50_000_000)
    made = asyncio.create_task(child.run(fifo, tmp_path / "out.mp4", limits, 60, 60))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not (pids := _children_running("instastore.video.child")):
        assert loop.time() < deadline, "the child never started"
        await asyncio.sleep(0.05)
    os.kill(pids[0], signal.SIGSEGV)
    assert await made == child.Failed("the video's decoder crashed (SIGSEGV)")
