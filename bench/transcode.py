"""Video transcoding: its throughput, and what it costs photo uploads.

    python -m bench.transcode [--rounds N] [--photos N] [--videos N] [--skip-uploads]

1. Throughput: each kind of input (HEVC in QuickTime, VP9, ProRes, H.264 over the size
   cap) made into its browser-safe rendition by ``python -m instastore.video.child``, as
   the worker runs it; the CPU seconds the child used (user + system, its start-up
   included: RUSAGE_CHILDREN), and seconds of video per CPU second, median of the rounds.
2. Photo uploads while transcodes run: one `instastore serve` (embedded default,
   ``transcode_workers`` 1) on an empty store; rounds alternate between uploading
   ``--photos`` distinct JPEGs one after another with the transcode queue idle, and the
   same after ``--videos`` videos were uploaded (each transcoded in the background
   meanwhile); the p50 and p99 of the photo uploads' latency in each, and their ratio
   (target: p99 no worse than 1.2x). Results: bench/results/transcode.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from bench.hosts import Host, bench_env, free_port
from instastore import media

RESULTS = Path(__file__).resolve().parent / "results"
SECONDS = 3  # of each input video
RATE = 30  # frames a second of each input


def moving_clip(
    container: str,
    codec: str,
    size: tuple[int, int],
    *,
    pix_fmt: str = "yuv420p",
    audio: str | None = None,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
) -> bytes:
    """SECONDS of moving picture, as a camera gives an encoder work: a gradient panning,
    shapes crossing it, and sensor-like noise (a flat picture would cost next to nothing).
    The inputs are encoded fast (their cost is not what is measured)."""
    import av
    from PIL import ImageChops, ImageDraw

    width, height = size
    gradient = Image.linear_gradient("L").resize((2 * width, height))
    out = io.BytesIO()
    with av.open(out, mode="w", format={"mp4": "mp4", "mov": "mov"}[container]) as c:
        stream = c.add_stream(codec, rate=RATE)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.options = options or {}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = None
        if audio is not None:
            sound = c.add_stream(audio, rate=48000)
            sound.layout = "stereo"
        for i in range(SECONDS * RATE):
            shift = (i * 7) % width
            luma = gradient.crop((shift, 0, shift + width, height))
            picture = Image.merge(
                "RGB", (luma, luma.transpose(Image.Transpose.FLIP_LEFT_RIGHT), luma)
            )
            draw = ImageDraw.Draw(picture)
            for k in range(6):
                x = (i * (5 + k) + k * width // 6) % width
                y = (k * height // 6 + i * 3) % height
                draw.ellipse(
                    (x, y, x + width // 8, y + width // 8), fill=(40 * k, 200 - 30 * k, 90)
                )
            noise = Image.effect_noise(size, 12).convert("RGB")
            picture = ImageChops.add(picture, noise, scale=1.0, offset=-64)
            frame = av.VideoFrame.from_image(picture).reformat(format=pix_fmt)
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
        if sound is not None:
            for n in range(SECONDS * 48000 // 1024):
                tone = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
                for plane in tone.planes:
                    plane.update(bytes(plane.buffer_size))  # silence: AAC's cost varies little
                tone.sample_rate, tone.pts = 48000, n * 1024
                c.mux(sound.encode(tone))
            c.mux(sound.encode(None))
    return out.getvalue()


FAST_X26X = {"preset": "ultrafast"}
# name -> the input (a few seconds, as phones and cameras write them)
INPUTS: dict[str, Callable[[], bytes]] = {
    "hevc-mov-1280x720-aac-rotated": lambda: moving_clip(
        "mov", "libx265", (1280, 720), audio="aac", rotation=-90, options=FAST_X26X
    ),
    "vp9-mp4-854x480-opus": lambda: moving_clip(
        "mp4",
        "libvpx-vp9",
        (854, 480),
        audio="libopus",
        options={"deadline": "realtime", "cpu-used": "8"},
    ),
    "prores-mov-854x480-10bit": lambda: moving_clip(
        "mov", "prores_ks", (854, 480), pix_fmt="yuv422p10le"
    ),
    "h264-mp4-1920x1080": lambda: moving_clip("mp4", "libx264", (1920, 1080), options=FAST_X26X),
}


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def transcode_once(source: Path, target: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child transcode of ``source``."""
    target.unlink(missing_ok=True)
    limits = json.dumps(asdict(media.video_limits(50_000_000)))
    before, started = child_cpu_seconds(), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "instastore.video.child", str(source), str(target), limits],
        check=True,
        capture_output=True,
    )
    return child_cpu_seconds() - before, time.perf_counter() - started


def throughput(rounds: int, folder: Path) -> dict[str, Any]:
    found = {}
    for name, make in INPUTS.items():
        source = folder / name
        source.write_bytes(make())
        runs = [transcode_once(source, folder / f"{name}.mp4") for _ in range(rounds)]
        cpu = statistics.median(r[0] for r in runs)
        found[name] = {
            "input_bytes": source.stat().st_size,
            "output_bytes": (folder / f"{name}.mp4").stat().st_size,
            "cpu_s": round(cpu, 3),
            "wall_s": round(statistics.median(r[1] for r in runs), 3),
            "video_s_per_cpu_s": round(SECONDS / cpu, 2),
        }
        print(f"  {name}: {found[name]}", flush=True)
    return found


def jpeg(rng: random.Random) -> bytes:
    """A distinct 1200 x 900 photo (random blocks: no two alike, none deduplicated)."""
    image = Image.new("RGB", (1200, 900), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(12):
        x, y = rng.randrange(1100), rng.randrange(800)
        colour = tuple(rng.randrange(256) for _ in range(3))
        image.paste(colour, (x, y, x + 100, y + 100))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


async def upload(http: aiohttp.ClientSession, headers: dict, data: bytes, title: str) -> dict:
    form = aiohttp.FormData()
    form.add_field("title", title)
    form.add_field("file", data, filename="upload")
    async with http.post("/v1/photos", data=form, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        body: dict = await resp.json()
        return body


async def processing(http: aiohttp.ClientSession, headers: dict, ids: list[str]) -> int:
    left = 0
    for photo_id in ids:
        async with http.get(f"/v1/photos/{photo_id}", headers=headers) as resp:
            left += (await resp.json())["video_status"] == "processing"
    return left


async def drained(http: aiohttp.ClientSession, headers: dict, ids: list[str]) -> None:
    """Wait until none of the videos is processing (polled every second)."""
    for _ in range(600):
        if not await processing(http, headers, ids):
            return
        await asyncio.sleep(1)
    raise TimeoutError("the videos were still processing after 10 minutes")


async def upload_rounds(base_url: str, rounds: int, photos: int, videos: int) -> dict[str, Any]:
    rng = random.Random(7)
    video = INPUTS["vp9-mp4-854x480-opus"]()
    async with aiohttp.ClientSession(base_url) as http:
        name = f"bench{uuid.uuid4().hex[:8]}"
        async with http.post("/v1/users", json={"username": name, "password": "x" * 12}) as r:
            assert r.status == 201, await r.text()
        async with http.post("/v1/sessions", json={"username": name, "password": "x" * 12}) as r:
            headers = {"Authorization": f"Bearer {(await r.json())['token']}"}
        latencies: dict[str, list[float]] = {"idle": [], "transcoding": []}
        busy_at_end = []
        for i in range(2 * rounds):
            phase = "idle" if i % 2 == 0 else "transcoding"
            ids = []
            if phase == "transcoding":
                for v in range(videos):  # distinct bytes: a title of its own is not enough
                    data = video + uuid.uuid4().bytes  # trailing bytes the demuxer ignores
                    ids.append((await upload(http, headers, data, f"clip {i} {v}"))["id"])
            for p in range(photos):
                data = jpeg(rng)
                started = time.perf_counter()
                await upload(http, headers, data, f"photo {i} {p}")
                latencies[phase].append(time.perf_counter() - started)
            if phase == "transcoding":
                busy_at_end.append(await processing(http, headers, ids))
                await drained(http, headers, ids)  # before the next idle round
    result: dict[str, Any] = {"videos_still_processing_at_phase_end": busy_at_end}
    for phase, values in latencies.items():
        values.sort()
        result[phase] = {
            "uploads": len(values),
            "p50_ms": round(1000 * statistics.median(values), 1),
            "p99_ms": round(1000 * values[min(len(values) - 1, int(0.99 * len(values)))], 1),
        }
    result["p99_ratio"] = round(result["transcoding"]["p99_ms"] / result["idle"]["p99_ms"], 2)
    result["p50_ratio"] = round(result["transcoding"]["p50_ms"] / result["idle"]["p50_ms"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transcode", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=40, help="photo uploads per round")
    parser.add_argument("--videos", type=int, default=4, help="videos queued per busy round")
    parser.add_argument("--skip-uploads", action="store_true")
    args = parser.parse_args()
    summary: dict[str, Any] = {"seconds_of_each_input": SECONDS}
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as tmp:
        folder = Path(tmp)
        print("throughput ...", flush=True)
        summary["throughput"] = throughput(args.rounds, folder)
        if not args.skip_uploads:
            print("photo uploads, idle and while transcoding ...", flush=True)
            env = {
                **bench_env(folder),
                "INSTASTORE_TRANSCODE_WORKERS": "1",
                "INSTASTORE_UPLOADS_PER_MINUTE": "100000",
            }
            host = Host("127.0.0.1", free_port(), env, folder / "serve.log")
            host.start()
            try:
                host.wait_ready()
                summary["uploads"] = asyncio.run(
                    upload_rounds(
                        f"http://127.0.0.1:{host.port}", args.rounds, args.photos, args.videos
                    )
                )
            finally:
                host.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transcode.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / "transcode.md").write_text(markdown(summary))
    print(json.dumps(summary, indent=2))


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Transcode throughput (python -m bench.transcode)",
        "",
        f"| input ({summary['seconds_of_each_input']} s) | CPU s | wall s | s of video per CPU s |",
        "|---|---|---|---|",
    ]
    for name, t in summary["throughput"].items():
        lines.append(f"| {name} | {t['cpu_s']} | {t['wall_s']} | {t['video_s_per_cpu_s']} |")
    if "uploads" in summary:
        u = summary["uploads"]
        lines += [
            "",
            "| photo uploads | count | p50 ms | p99 ms |",
            "|---|---|---|---|",
            *(
                f"| {phase} | {u[phase]['uploads']} | {u[phase]['p50_ms']} | {u[phase]['p99_ms']} |"
                for phase in ("idle", "transcoding")
            ),
            "",
            f"p99 ratio {u['p99_ratio']}, p50 ratio {u['p50_ratio']}; videos still processing "
            f"when each busy round's photos were done: {u['videos_still_processing_at_phase_end']}",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
