"""Server memory while a 1 GiB video streams up and then down.

The video is a real MP4 (a few frames from PyAV) followed by a 1 GiB ISO-BMFF ``free``
box, which players and decoders skip: a valid file of the size we want without minutes
of encoding."""

from __future__ import annotations

import asyncio
import io
import struct
import tempfile
import time
from pathlib import Path

import aiohttp
import av
from PIL import Image

from bench.procs import pids_on_port, rss_mb

MiB = 2**20


def make_video(path: Path, padding_bytes: int) -> int:
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as c:
        stream = c.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(24):
            for packet in stream.encode(
                av.VideoFrame.from_image(Image.new("RGB", (320, 240), (i * 10, 90, 160)))
            ):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    with open(path, "wb") as f:
        f.write(out.getvalue())
        f.write(struct.pack(">I", padding_bytes + 8) + b"free")
        block = bytes(MiB)
        for _ in range(padding_bytes // MiB):
            f.write(block)
    return path.stat().st_size


async def _sample(pids: list[int], samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(rss_mb(pids))
        await asyncio.sleep(0.1)


async def video_memory(base_url: str, token: str, port: int, size_mib: int = 1024) -> dict:
    pids = pids_on_port(port)
    folder = Path(tempfile.mkdtemp(prefix="bench-video-"))
    path = folder / "big.mp4"
    size = await asyncio.to_thread(make_video, path, size_mib * MiB)
    baseline = rss_mb(pids)
    up, down = [], []
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(base_url, timeout=timeout) as http:
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample(pids, up, stop))
        started = time.perf_counter()
        with await asyncio.to_thread(open, path, "rb") as f:
            form = aiohttp.FormData()
            form.add_field("title", "one gibibyte of video")
            form.add_field("file", f, filename="big.mp4", content_type="video/mp4")
            resp = await http.post(
                "/v1/photos", data=form, headers={"Authorization": f"Bearer {token}"}
            )
            body = await resp.json()
        upload_s = time.perf_counter() - started
        stop.set()
        await sampler
        if resp.status != 201:
            raise SystemExit(f"video upload failed: {resp.status} {body}")
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample(pids, down, stop))
        started = time.perf_counter()
        received = 0
        # The owner's original: the viewers' "video" is a remuxed copy without the padding.
        async with http.get(
            body["media"]["original"], headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            async for chunk in resp.content.iter_chunked(MiB):
                received += len(chunk)
        download_s = time.perf_counter() - started
        stop.set()
        await sampler
    await asyncio.to_thread(path.unlink)
    await asyncio.to_thread(folder.rmdir)
    assert received == size, (received, size)
    return {
        "video_bytes": size,
        "server_rss_baseline_mb": round(baseline, 1),
        "server_rss_peak_upload_mb": round(max(up), 1),
        "server_rss_peak_download_mb": round(max(down), 1),
        "growth_mb": round(max(max(up), max(down)) - baseline, 1),
        "upload_s": round(upload_s, 1),
        "download_s": round(download_s, 1),
    }
