"""Many hosts, as a new user first tries them: three `instastore serve` hosts with the
documented defaults on one store, behind the nginx of deploy/nginx.conf, and uploads of
the same bytes sent through it at once (no Idempotency-Key: the case where an upload
reuses another's stored bytes and writes no blob of its own). Then every acknowledged
upload is read back: its id, its title, its original's sha256.

    python -m bench.many_hosts [--uploads N] [--users N] [--concurrency N] [--commit C]

``--commit C`` serves an export of that commit instead (the figures before a change).

On the settings' store (the cluster's when INSTASTORE_CASSANDRA_HOSTS and
INSTASTORE_WEBHDFS_URL are set, in a migrated keyspace; else the embedded default in a
folder of its own). Results: bench/results/many-hosts-<store>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

from bench import report
from bench.hosts import Balancer, bench_env, export

RESULTS = Path(__file__).resolve().parent / "results"


async def run(base: str, uploads: int, users: int, concurrency: int, image: bytes) -> dict:
    async with aiohttp.ClientSession() as http:
        tokens = []
        for _ in range(users):
            body = {"username": f"mh{uuid.uuid4().hex[:10]}", "password": "many hosts bench"}
            async with http.post(f"{base}/v1/users", json=body) as resp:
                assert resp.status == 201, await resp.text()
            async with http.post(f"{base}/v1/sessions", json=body) as resp:
                tokens.append((await resp.json())["token"])
        gate = asyncio.Semaphore(concurrency)

        async def upload(i: int) -> tuple[int, int, dict]:
            form = aiohttp.FormData()
            form.add_field("file", image, filename="p.jpg", content_type="image/jpeg")
            form.add_field("title", f"upload {i}")
            headers = {"Authorization": f"Bearer {tokens[i % users]}"}
            async with gate, http.post(f"{base}/v1/photos", data=form, headers=headers) as resp:
                return i, resp.status, await resp.json(content_type=None)

        started = time.perf_counter()
        answers = await asyncio.gather(*(upload(i) for i in range(uploads)))
        seconds = time.perf_counter() - started
        acknowledged = [(i, photo) for i, status, photo in answers if status == 201]
        changed = 0
        digest = hashlib.sha256(image).digest()
        for i, photo in acknowledged:
            headers = {"Authorization": f"Bearer {tokens[i % users]}"}
            async with http.get(f"{base}/v1/photos/{photo['id']}", headers=headers) as resp:
                record = await resp.json()
            if resp.status != 200 or record["title"] != f"upload {i}":
                changed += 1
                continue
            async with http.get(f"{base}{record['media']['original']}", headers=headers) as resp:
                changed += hashlib.sha256(await resp.read()).digest() != digest
        return {
            "uploads": uploads,
            "statuses": dict(Counter(str(status) for _, status, _ in answers)),
            "acknowledged": len(acknowledged),
            "distinct_ids": len({photo["id"] for _, photo in acknowledged}),
            "acknowledged_but_lost_or_changed": changed,
            "uploads_per_s": round(uploads / seconds, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=300)
    parser.add_argument("--users", type=int, default=10, help="uploads are spread over them")
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--commit", default=None, help="serve this commit's code instead")
    args = parser.parse_args()

    from tests import samples

    folder = Path(tempfile.mkdtemp(prefix="bench-many-hosts-"))
    env = bench_env(folder)
    store = "cluster" if env.get("INSTASTORE_CASSANDRA_HOSTS") else "embedded"
    code = export(args.commit, folder / "code") if args.commit else None
    balancer = Balancer.up(env, folder, code=code)
    try:
        figures = asyncio.run(
            run(
                balancer.base,
                args.uploads,
                args.users,
                args.concurrency,
                samples.image("JPEG", (640, 480)),
            )
        )
    finally:
        balancer.down()
    body = {
        "machine": report.machine(),
        "store": store,
        "commit_served": args.commit or "this one",
        "hosts": len(balancer.hosts),
        "settings": {"users": args.users, "concurrency": args.concurrency},
        "results": figures,
        "targets": {"acknowledged_but_lost_or_changed": 0, "distinct_ids": "= acknowledged"},
    }
    suffix = f"-{args.commit}" if args.commit else ""
    report.write(RESULTS, f"many-hosts-{store}{suffix}", body)
    print(figures)


if __name__ == "__main__":
    main()
