"""``python -m bench run``: drive a mix of operations against a running service.

Several load processes (``--processes``), each an asyncio loop with ``--concurrency``
tasks, so the generator is not what limits the figures. Each request's operation, start
time, latency and status are collected; ``report.py`` turns them into the report.
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing
import os
import random
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.seed import PASSWORD, WORDS

TAGS = WORDS[:10]  # the tags of the social mix's uploads (and of ``tagged_photos``)
COLD_URLS = 20_000  # distinct photos read once each by media_cold (their bytes are not cached yet)
MIXES = {
    "read-heavy": {
        "media": 55,
        "media_cold": 5,
        "timeline": 20,
        "photo": 8,
        "search": 5,
        "like": 5,
        "upload": 2,
    },
    # The read-heavy mix with the social loop's reads and writes in it: a photo's
    # comments, a comment (mentioning another reader now and then), the activity inbox
    # and its unread count, a tag's page (uploads here carry a tag: ``TAGS``).
    "social": {
        "media": 45,
        "media_cold": 5,
        "timeline": 15,
        "photo": 8,
        "search": 4,
        "like": 4,
        "upload": 2,
        "comments": 6,
        "comment": 2,
        "activity": 4,
        "unread": 3,
        "tag": 2,
    },
    "media": {"media": 100},
    "media-cold": {"media_cold": 100},
    "timeline": {"timeline": 100},
    "search": {"search": 100},
    "upload": {"upload": 100},
}


@dataclass
class Plan:
    base_url: str
    mix: str
    duration: float
    concurrency: int
    tokens: list[str]
    hot_media: list[str]
    cold_media: list[str]
    photo_ids: list[str]
    uploads: list[bytes]
    out: str


async def prepare(base_url: str, readers: int, uploads: list[bytes]) -> dict:
    """Log the readers in and collect the URLs the mix will use."""
    async with aiohttp.ClientSession(base_url) as http:
        tokens = []
        for i in range(readers):
            resp = await http.post(
                "/v1/sessions", json={"username": f"reader{i}", "password": PASSWORD}
            )
            if resp.status == 201:
                tokens.append((await resp.json())["token"])
        if not tokens:
            raise SystemExit("no reader could log in: run `python -m bench seed` first")
        auth = {"Authorization": f"Bearer {tokens[0]}"}
        photos, cursor = [], None
        while len(photos) < COLD_URLS:
            url = "/v1/timeline?order=recent&limit=100" + (f"&cursor={cursor}" if cursor else "")
            page = await (await http.get(url, headers=auth)).json()
            photos += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
    hot = [p["media"]["thumb"] for p in photos[:50]] + [p["media"]["large"] for p in photos[:50]]
    cold = [p["media"]["large"] for p in photos[100:]]
    random.Random(1).shuffle(cold)
    return {
        "tokens": tokens,
        "hot_media": hot,
        "cold_media": cold,
        "photo_ids": [p["id"] for p in photos],
    }


async def _worker(plan: Plan, index: int, deadline: float, records: list, cold: list[str]) -> None:
    rng = random.Random(index)
    ops, weights = zip(*MIXES[plan.mix].items(), strict=True)
    base = plan.base_url or None  # None: the URLs are absolute (a reference, e.g. WebHDFS)
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=0)) as http:
        while time.monotonic() < deadline:
            op = rng.choices(ops, weights)[0]
            token = plan.tokens[rng.randrange(len(plan.tokens))]
            auth = {"Authorization": f"Bearer {token}"}
            started = time.monotonic()
            try:
                if op == "media":
                    resp = await http.get(rng.choice(plan.hot_media))
                elif op == "media_cold":
                    if not cold:
                        return  # every cold URL served once: never spin (it would starve the loop)
                    resp = await http.get(cold.pop())
                elif op == "timeline":
                    order = "top" if rng.random() < 0.5 else "recent"
                    resp = await http.get(f"/v1/timeline?order={order}&limit=20", headers=auth)
                elif op == "photo":
                    resp = await http.get(f"/v1/photos/{rng.choice(plan.photo_ids)}")
                elif op == "search":
                    resp = await http.get(  # signed in: no per-address limit of searches
                        f"/v1/search/photos?q={rng.choice(WORDS)}+{rng.choice(WORDS)}&limit=20",
                        headers=auth,
                    )
                elif op == "comments":
                    resp = await http.get(
                        f"/v1/photos/{rng.choice(plan.photo_ids)}/comments?limit=20",
                        headers=auth,
                    )
                elif op == "comment":
                    mention = (
                        f" @reader{rng.randrange(len(plan.tokens))}" if rng.random() < 0.3 else ""
                    )
                    resp = await http.post(
                        f"/v1/photos/{rng.choice(plan.photo_ids)}/comments",
                        json={"text": f"{rng.choice(WORDS)} {rng.choice(WORDS)}{mention}"},
                        headers=auth,
                    )
                elif op == "activity":
                    resp = await http.get("/v1/activity?limit=20", headers=auth)
                elif op == "unread":
                    resp = await http.get("/v1/activity/unread", headers=auth)
                elif op == "tag":
                    resp = await http.get(
                        f"/v1/tags/{rng.choice(TAGS)}/photos?limit=20", headers=auth
                    )
                elif op == "like":
                    resp = await http.put(
                        f"/v1/photos/{rng.choice(plan.photo_ids)}/like", headers=auth
                    )
                else:
                    form = aiohttp.FormData()
                    title = " ".join(rng.choice(WORDS) for _ in range(3))
                    if plan.mix == "social":
                        title += f" #{rng.choice(TAGS)}"
                    form.add_field("title", title)
                    form.add_field(
                        "file", io.BytesIO(distinct(rng.choice(plan.uploads))), filename="bench.jpg"
                    )
                    resp = await http.post("/v1/photos", data=form, headers=auth)
                await resp.read()
                status = resp.status
            except aiohttp.ClientError as exc:
                status = f"error: {type(exc).__name__}"
            records.append((op, started, time.monotonic() - started, status))


async def tagged_photos(base_url: str, token: str, uploads: list[bytes], count: int) -> None:
    """Upload ``count`` photos whose titles carry the ``TAGS`` in turn, so that each tag
    page of the social mix has photos from its first request (the seed's titles have no
    tags)."""
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url) as http:
        for n in range(count):
            form = aiohttp.FormData()
            form.add_field("title", f"{WORDS[n % len(WORDS)]} #{TAGS[n % len(TAGS)]}")
            form.add_field(
                "file", io.BytesIO(distinct(uploads[n % len(uploads)])), filename="t.jpg"
            )
            async with http.post("/v1/photos", data=form, headers=auth) as resp:
                if resp.status != 201:
                    raise SystemExit(f"a tagged upload failed: {resp.status} {await resp.text()}")


def distinct(jpeg: bytes) -> bytes:
    """The same picture with bytes no other upload has: a JPEG comment segment (COM) of 16
    random bytes after the start-of-image marker. Without it every upload after the first
    of each image would be deduplicated (no media processing, no blob written), and the
    upload mix would measure the dedupe path, not the upload pipeline."""
    return jpeg[:2] + b"\xff\xfe\x00\x12" + os.urandom(16) + jpeg[2:]


def _process(plan: Plan, index: int) -> None:
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    records: list = []
    cold = plan.cold_media[index :: max(1, int(os.environ.get("BENCH_PROCESSES", "1")))]
    deadline = time.monotonic() + plan.duration

    async def main():
        await asyncio.gather(
            *(
                _worker(plan, index * 1000 + t, deadline, records, cold)
                for t in range(plan.concurrency)
            )
        )

    loop.run_until_complete(main())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(plan.out, f"records-{index}.jsonl").write_text(
        "\n".join(json.dumps(r) for r in records) + "\n"
    )
    Path(plan.out, f"cpu-{index}.json").write_text(
        json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime})
    )


def run(plan: Plan, processes: int) -> tuple[list, float]:
    """Run the load; return every record and the load generator's CPU seconds."""
    os.environ["BENCH_PROCESSES"] = str(processes)
    Path(plan.out).mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_process, args=(plan, i)) for i in range(processes)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    records, cpu = [], 0.0
    for i in range(processes):
        records += [
            tuple(json.loads(line))
            for line in Path(plan.out, f"records-{i}.jsonl").read_text().splitlines()
            if line
        ]
        cpu += json.loads(Path(plan.out, f"cpu-{i}.json").read_text())["cpu_s"]
        Path(plan.out, f"records-{i}.jsonl").unlink()
        Path(plan.out, f"cpu-{i}.json").unlink()
    return records, cpu
