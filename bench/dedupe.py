"""``python -m bench.dedupe``: the same image uploaded ``--uploads`` times (default 1,000)
through the HTTP API; the bytes stored vs one copy's (the target: stored once, + < 1%).

Starts the service in this process on a free port (the settings' adapter: embedded by
default, the cluster with ``eval "$(instastore cluster env)"`` and a migrated keyspace),
signs up ``--users`` users who upload the same JPEG in turn, ``--concurrency`` at a time,
and counts the blob store's bytes (``BlobStore.entries``) before and after. One copy's
bytes are what the first upload stored (its original and renditions). Each upload must
answer 201 with the same fields. Written to ``bench/results/dedupe.json`` and ``.md``
with the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import report, seed
from instastore import config
from instastore.config import Settings
from instastore.storage import open_stores

RESULTS = Path(__file__).parent / "results"
TARGET_OVERHEAD = 0.01  # the image's bytes stored once, plus under 1%


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dedupe", description=__doc__)
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--image-bytes", type=int, default=400_000, help="about this size")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="dedupe")
    config.add_arguments(parser)
    return parser.parse_args()


async def stored_bytes(settings: Settings) -> dict[str, int]:
    stores = await open_stores(settings)
    try:
        return {e.key: e.size async for e in stores.blobs.entries()}
    finally:
        await stores.close()


async def sign_up(http: aiohttp.ClientSession, name: str) -> dict[str, str]:
    credentials = {"username": name, "password": "dedupe-bench-password"}
    async with http.post("/v1/users", json=credentials) as resp:
        assert resp.status == 201, await resp.text()
    async with http.post("/v1/sessions", json=credentials) as resp:
        assert resp.status == 201, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def upload(http: aiohttp.ClientSession, headers: dict[str, str], data: bytes) -> dict:
    form = aiohttp.FormData()
    form.add_field("title", "the same image")
    form.add_field("file", data, filename="same.jpg", content_type="image/jpeg")
    async with http.post("/v1/photos", data=form, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def measure(args: argparse.Namespace, settings: Settings) -> dict:
    from instastore.server.app import create_app

    data = seed.make_jpeg(random.Random(), args.image_bytes)  # bytes no earlier run stored
    port = free_port()
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    before = await stored_bytes(settings)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            tag = f"{random.randrange(16**8):08x}"
            users = [await sign_up(http, f"dd{tag}u{i}") for i in range(args.users)]
            first = await upload(http, users[0], data)
            one_copy = sum((await stored_bytes(settings)).values()) - sum(before.values())
            started = time.perf_counter()
            queue = list(range(1, args.uploads))
            shapes = {tuple(sorted(first))}

            async def worker() -> None:
                while queue:
                    i = queue.pop()
                    shapes.add(tuple(sorted(await upload(http, users[i % len(users)], data))))

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            elapsed = time.perf_counter() - started
    finally:
        await runner.cleanup()
    after = await stored_bytes(settings)
    added = {k: s for k, s in after.items() if k not in before}
    total = sum(added.values())
    overhead = (total - one_copy) / one_copy
    return {
        "uploads": args.uploads,
        "users": args.users,
        "concurrency": args.concurrency,
        "image_bytes": len(data),
        "one_copy_bytes": one_copy,
        "stored_bytes": total,
        "stored_blobs": len(added),
        "overhead_vs_one_copy": round(overhead, 6),
        "same_answer_fields": len(shapes) == 1,
        "uploads_per_s": round((args.uploads - 1) / elapsed, 1),
        "target": f"stored_bytes <= one_copy_bytes * {1 + TARGET_OVERHEAD}",
        "met": overhead < TARGET_OVERHEAD and len(shapes) == 1,
    }


def main() -> None:
    args = parse()
    settings = dataclasses.replace(
        config.settings_from_args(args), uploads_per_minute=10 * args.uploads
    )
    result = asyncio.run(measure(args, settings))
    body = {
        "machine": report.machine(),
        "settings": {
            "adapter": "cluster" if settings.uses_cluster else "embedded",
            "keyspace": settings.cassandra_keyspace,
        },
        "result": result,
    }
    report.write(args.out, args.name, body)
    with (args.out / f"{args.name}.md").open("a") as md:
        md.write("\n| measure | value |\n|---|---|\n")
        md.writelines(f"| {key} | {value} |\n" for key, value in result.items())
    print(result)


if __name__ == "__main__":
    main()
