"""One video's browser-safe rendition, made in a child process (``python -m
instastore.video.child``), so a decoder that crashes or runs away costs that process,
never the server or the worker that started it. The parent (``run``) limits its CPU time
(RLIMIT_CPU: the kernel stops it) and its wall time (killed), and reads one line of JSON
back: the rendition's size, or why the video cannot have one."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from instastore.errors import InvalidMedia
from instastore.video.probe import VideoLimits, transcode_reason
from instastore.video.rendition import Made, inspect, remux, transcode

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
REFUSED_EXIT = 3  # the video is refused: the reason is on stdout


@dataclass(frozen=True)
class Failed:
    reason: str  # what the owner reads


def make(source: Path, target: Path, limits: VideoLimits) -> Made:
    """The rendition of ``source`` at ``target``: a stream copy when that plays in every
    browser already, else a transcode. ``InvalidMedia`` when the video is refused."""
    found, _ = inspect(source, "uploaded", limits)
    if transcode_reason(found, limits) is None:
        return remux(source, target, found)
    return transcode(source, target, found, limits)


async def run(
    source: Path, target: Path, limits: VideoLimits, cpu_s: int, wall_s: float
) -> Made | Failed:
    """Make the rendition in a child process within ``cpu_s`` of CPU and ``wall_s``;
    whatever a failed child leaves at ``target`` is the caller's to remove."""

    def limit_cpu() -> None:  # in the child, before it runs Python
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        with contextlib.suppress(OSError, AttributeError):  # Linux: dies with its worker
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    args = [str(source), str(target), json.dumps(asdict(limits))]
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "instastore.video.child",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=limit_cpu,
    )
    try:
        out, _ = await asyncio.wait_for(child.communicate(), wall_s)
    except TimeoutError:
        child.kill()
        await child.wait()
        return Failed(f"the transcode took longer than {wall_s:g} s")
    except BaseException:  # cancelled: the child goes with its parent's job
        child.kill()
        await child.wait()
        raise
    code = child.returncode
    if code == 0:
        return Made(**json.loads(out))
    if code == REFUSED_EXIT:
        return Failed(json.loads(out)["reason"])
    if code == -signal.SIGXCPU:
        return Failed(f"the transcode used more than {cpu_s} s of CPU")
    if code == -signal.SIGKILL:  # the kernel's out-of-memory killer picks the largest
        return Failed("the transcode was killed (out of memory?)")
    if code is not None and code < 0:
        return Failed(f"the video's decoder crashed ({signal.Signals(-code).name})")
    return Failed(f"the transcode failed (exit status {code})")


def main(argv: list[str]) -> int:
    source, target, limits = Path(argv[0]), Path(argv[1]), VideoLimits(**json.loads(argv[2]))
    os.nice(limits.nice)  # behind the server's own work on a shared core
    try:
        made = make(source, target, limits)
    except InvalidMedia as exc:
        print(json.dumps({"reason": str(exc)}))
        return REFUSED_EXIT
    except (ValueError, OSError) as exc:  # FFmpeg's errors are OSErrors; never a path
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        print(json.dumps({"reason": f"the video does not transcode: {reason}"}))
        return REFUSED_EXIT
    print(json.dumps(asdict(made)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
