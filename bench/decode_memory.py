"""Server memory while many large images are uploaded at once: ``--uploads`` (default 25)
uploads of ``--size`` x ``--size`` pixels (default 7000 x 7000, just under the 50-megapixel
limit) sent together to one `instastore serve` process.

    python -m bench.decode_memory [--format jpeg|png] [--rounds N] [--commit C] [--name N]

Each round starts a fresh server on an empty store of its own (the embedded default
unless the shell's INSTASTORE_* name the cluster), signs up one user, and reads the
server's peak resident size (VmHWM, exact: the kernel's high-water mark, not a sample)
before and after the uploads. Every upload is the same picture with a comment of its own
(a JPEG COM segment, a PNG tEXt chunk), so none is deduplicated against another and each
is decoded. ``--commit C`` serves an export of that commit (the figures before a change).
Results, with the median of the rounds: bench/results/decode-memory-<format>[-<commit>].*
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import struct
import tempfile
import time
import uuid
import zlib
from collections import Counter
from pathlib import Path

import aiohttp
from PIL import Image

from bench import report
from bench.hosts import Host, bench_env, export, free_port

RESULTS = Path(__file__).resolve().parent / "results"
MiB = 2**20


def picture(fmt: str, size: int) -> bytes:
    """A smooth colour picture (a few MB, as a phone's would be) of ``size`` x ``size``."""
    gradient = Image.linear_gradient("L").resize((size, size))
    image = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_90), gradient))
    out = io.BytesIO()
    image.save(out, fmt.upper(), **({"quality": 85} if fmt == "jpeg" else {}))
    return out.getvalue()


def distinct(data: bytes, fmt: str, tag: bytes) -> bytes:
    """``data`` with ``tag`` in a comment: other bytes (no dedupe), the same pixels."""
    if fmt == "jpeg":  # a COM segment right after SOI
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag + data[2:]
    body = b"bench\0" + tag  # a tEXt chunk right after IHDR (8-byte signature + 25)
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return data[:33] + chunk + data[33:]


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


async def uploads_at_once(base: str, images: list[bytes], fmt: str) -> tuple[Counter, float]:
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=900)) as http:
        credentials = {"username": f"dm{uuid.uuid4().hex[:10]}", "password": "decode bench"}
        async with http.post("/v1/users", json=credentials) as resp:
            assert resp.status == 201, await resp.text()
        async with http.post("/v1/sessions", json=credentials) as resp:
            headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}

        async def upload(i: int, data: bytes) -> int:
            form = aiohttp.FormData()
            form.add_field("file", data, filename=f"big.{fmt}", content_type=f"image/{fmt}")
            form.add_field("title", f"large {i}")
            async with http.post("/v1/photos", data=form, headers=headers) as resp:
                await resp.read()
                return resp.status

        started = time.perf_counter()
        statuses = await asyncio.gather(*(upload(i, d) for i, d in enumerate(images)))
        return Counter(str(s) for s in statuses), time.perf_counter() - started


def one_round(env: dict[str, str], folder: Path, code: Path | None, images, fmt) -> dict:
    folder.mkdir(parents=True)
    env = {
        **env,
        "INSTASTORE_DATA_DIR": str(folder / "data"),
        "INSTASTORE_UPLOADS_PER_MINUTE": "100000",
    }
    host = Host("127.0.0.1", free_port(), env, folder / "serve.log", code=code)
    host.start()
    try:
        host.wait_ready()
        assert host.proc is not None
        pid = host.proc.pid
        before = memory_kib(pid, "VmRSS")
        statuses, seconds = asyncio.run(uploads_at_once(host.base, images, fmt))
        peak = memory_kib(pid, "VmHWM")
    finally:
        host.stop()
    return {
        "rss_before_mib": round(before / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "growth_mib": round((peak - before) / 1024, 1),
        "statuses": dict(statuses),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=25)
    parser.add_argument("--size", type=int, default=7000, help="edge in pixels")
    parser.add_argument("--format", choices=["jpeg", "png"], default="jpeg")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commit", default=None, help="serve this commit's code instead")
    parser.add_argument("--name", default=None, help="of the results (default: as above)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-decode-memory-"))
    env = bench_env(folder)
    store = "cluster" if env.get("INSTASTORE_CASSANDRA_HOSTS") else "embedded"
    code = export(args.commit, folder / "code") if args.commit else None
    base = picture(args.format, args.size)
    images = [distinct(base, args.format, f"upload {i}".encode()) for i in range(args.uploads)]
    rounds = []
    for n in range(args.rounds):
        rounds.append(one_round(env, folder / f"round{n}", code, images, args.format))
        print(rounds[-1], flush=True)
    pixels = args.size * args.size
    growth = statistics.median(r["growth_mib"] for r in rounds)
    figures = {
        "uploads_at_once": args.uploads,
        "image": f"{args.format} {args.size}x{args.size}, {len(base):,} bytes",
        "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in rounds),
        "median_growth_mib": growth,
        "median_growth_bytes_per_pixel_per_upload": round(growth * MiB / pixels / args.uploads, 2),
        "median_seconds": statistics.median(r["seconds"] for r in rounds),
        "rounds": rounds,
    }
    body = {
        "machine": report.machine(),
        "store": store,
        "commit_served": args.commit or "this one",
        "settings": {
            k: v for k, v in env.items() if k.startswith("INSTASTORE_DECODE") or "PIXELS" in k
        }
        or "defaults",
        "results": figures,
    }
    suffix = f"-{args.commit}" if args.commit else ""
    report.write(RESULTS, args.name or f"decode-memory-{args.format}{suffix}", body)
    print({k: v for k, v in figures.items() if k != "rounds"})


if __name__ == "__main__":
    main()
