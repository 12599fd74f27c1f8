"""``python -m bench.fanout``: the figures of the timeline's fan-out on write, each side
by side with what it is compared with, in alternating rounds (``bench/abba.py``).

- ``pages``: sequential timeline pages of one reader (``reader0`` follows 1,000
  accounts, ``wide0`` of ``bench seed --wide 7500`` follows 7,500), "recent" or "top",
  the first page or a page ``--days-back`` days back (a cursor sealed with the
  deployment's cursor key: the store's, so the bench needs the cluster's settings),
  through the service (A) against another service (``--versus URL``: the commit before
  the fan-out, served from an export) or the raw CQL of a first page (``--raw-cql``,
  ``refs.raw_cql_timeline``). Each side's latencies are pooled over the rounds (p50, p99
  of every page); the rounds' figure is pages per second.
- ``rows``: in this process (no server), the store calls and the rows they return for
  one page, through the real services over the cluster's stores (a counting wrapper
  over the metadata adapter): the first page cold (caches empty), then ``--samples``
  pages warm, p50 and max. Run it as a file with ``PYTHONPATH=<export>`` to count an
  older commit's pages (it imports nothing the commit before the fan-out lacks).
- ``uploads``: uploads by one poster (``fan<N>`` of ``bench seed --fan-posters``) to the
  service with fan-out on (A) against one with ``INSTASTORE_FANOUT_MAX_FOLLOWERS=0`` (B),
  both on the same store: each round ``--per-round`` uploads of distinct bytes,
  ``--concurrency`` at once. A's round ends when its fan-outs are done too (the poster's
  fan-out queue empty), so their background work is inside A's time; B leaves its queue
  behind (nothing fans out with 0), and the bench fans B's photos out itself between
  rounds, untimed, so that A never does B's work. Figures: uploads per second (to the
  last acknowledgement, and to the fan-out done), upload latency p50/p99 pooled.
- ``mix``: the ``timeline`` mix (``bench run --mix timeline``) against both services
  in turn, ``--seconds`` a round; pages per second.

Writes ``bench/results/<--name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import io
import json
import os
import random
import secrets
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench import abba, report
from bench.procs import cpu_seconds, pids_on_port
from bench.seed import PASSWORD
from instastore import config, ids, paging
from instastore.config import Settings
from instastore.services import build_services
from instastore.storage import open_stores
from instastore.storage.ports import Stores

RESULTS = Path(__file__).parent / "results"
DAY_MS = 86_400_000
LIMIT = 20  # a page, as the app asks


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("what", choices=["pages", "rows", "uploads", "mix"])
    parser.add_argument("--base-url", default="http://127.0.0.1:8401")
    parser.add_argument("--versus", default="", help="side B: another running service")
    parser.add_argument("--versus-label", default="", help="what side B is (e.g. a commit)")
    parser.add_argument("--raw-cql", action="store_true", help="pages: side B is the raw CQL")
    parser.add_argument("--reader", default="reader0")
    parser.add_argument("--order", choices=["recent", "top"], default="recent")
    parser.add_argument("--days-back", type=float, default=0, help="0: the first page")
    parser.add_argument("--pages", type=int, default=300, help="pages per side, all rounds")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--samples", type=int, default=30, help="rows: warm pages counted")
    parser.add_argument(
        "--walk", action="store_true", help="rows: then follow the cursors to 20 photos"
    )
    parser.add_argument("--poster", default="fan1000")
    parser.add_argument("--per-round", type=int, default=24, help="uploads per side a round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15, help="mix: seconds a side a round")
    parser.add_argument("--name", default="")
    parser.add_argument("--out", type=Path, default=RESULTS)
    config.add_arguments(parser)
    return parser.parse_args()


async def login(base_url: str, username: str) -> str:
    async with aiohttp.ClientSession(base_url) as http:
        resp = await http.post("/v1/sessions", json={"username": username, "password": PASSWORD})
        if resp.status != 201:
            raise SystemExit(f"{username} could not sign in at {base_url}: {resp.status}")
        return str((await resp.json())["token"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def latency(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_ms": percentile(values, 0.5),
        "p99_ms": percentile(values, 0.99),
        "max_ms": round(max(values), 2),
    }


async def deep_cursor(settings: Settings, user_id: int, order: str, days_back: float) -> str:
    """A cursor ``days_back`` days before now, sealed as the deployment's services seal
    theirs (the store's cursor key)."""
    stores = await open_stores(settings)
    try:
        key = await stores.keys.server_key("cursor", secrets.token_bytes(paging.KEY_BYTES))
    finally:
        await stores.close()
    cursors = paging.Cursors(key)
    before = ids.id_for_time(ids.now_ms() - int(days_back * DAY_MS))
    if order == "recent":
        return cursors.encode_cursor(before, paging.Scope("timeline recent", (user_id,)))
    return cursors.encode_top_cursor([0, before], paging.Scope("timeline top", (user_id,)))


async def user_id_of(settings: Settings, username: str) -> int:
    stores = await open_stores(settings)
    try:
        user = await stores.accounts.get_user_by_name(username)
        assert user is not None, f"no {username}: seed it first"
        return user.id
    finally:
        await stores.close()


# ---- pages ---------------------------------------------------------------------------


async def measure_pages(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    reader_id = await user_id_of(settings, args.reader)
    path = f"/v1/timeline?order={args.order}&limit={LIMIT}"
    if args.days_back:
        cursor = await deep_cursor(settings, reader_id, args.order, args.days_back)
        path += f"&cursor={cursor}"
    per_round = max(1, args.pages // args.rounds)
    timings: dict[str, list[float]] = {"a": [], "b": []}
    sessions: list[aiohttp.ClientSession] = []

    async def service_side(base_url: str, label: str) -> abba.Side:
        headers = {"Authorization": f"Bearer {await login(base_url, args.reader)}"}
        http = aiohttp.ClientSession(base_url)
        sessions.append(http)

        async def side(_: int) -> float:
            started = time.perf_counter()
            for _ in range(per_round):
                t = time.perf_counter()
                async with http.get(path, headers=headers) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise SystemExit(f"{base_url}{path}: {resp.status} {body[:300]!r}")
                timings[label].append((time.perf_counter() - t) * 1000)
            return per_round / (time.perf_counter() - started)

        return side

    async def raw_side(_: int) -> float:
        from bench import refs

        got = await asyncio.to_thread(refs.raw_cql_timeline, settings, reader_id, per_round, LIMIT)
        timings["b"] += got["timings_ms"]
        return 1000 * per_round / sum(got["timings_ms"])

    a = await service_side(args.base_url, "a")
    if args.raw_cql:
        b, b_what = raw_side, "the raw CQL of a first page (refs.raw_cql_timeline)"
    else:
        b, b_what = await service_side(args.versus, "b"), f"the service at {args.versus}"
    try:
        # One page each first: caches filled (followee lists, newest ids), connections open.
        await a(0)
        await b(0)
        timings = {"a": [], "b": []}
        rounds = await abba.alternate(a, b, args.rounds)
    finally:
        for http in sessions:
            await http.close()
    return {
        "settings": {
            "reader": args.reader,
            "order": args.order,
            "days_back": args.days_back,
            "pages_per_side_per_round": per_round,
            "rounds": args.rounds,
            "a": f"the service at {args.base_url}",
            "a_commit": report.machine()["commit"],
            "b": b_what,
            "b_label": args.versus_label,
            "figure": "pages per second, one page at a time",
        },
        "results": {
            "a": latency(timings["a"]),
            "b": latency(timings["b"]),
            "p99_ratio_a_over_b": round(
                percentile(timings["a"], 0.99) / percentile(timings["b"], 0.99), 3
            ),
            "rounds": rounds.summary(),
        },
    }


# ---- rows ----------------------------------------------------------------------------


class Counting:
    """The metadata adapter, with every coroutine call counted by method, and the rows
    (items of a list, tuple or dict) each returned."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._adapter, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            got = await attr(*args, **kwargs)
            self.calls[name] += 1
            if isinstance(got, list | tuple | dict):
                self.rows[name] += len(got)
            return got

        return call

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        return Counter(self.calls), Counter(self.rows)


MERGE_READS = ("inbox_ids", "user_photo_ids")  # the rows a page's merge reads


async def measure_rows(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    plain = await open_stores(settings)
    counting = Counting(plain.metadata)
    stores = Stores.over(counting, plain.blobs)  # type: ignore[arg-type]
    try:
        key = await plain.keys.server_key("cursor", secrets.token_bytes(paging.KEY_BYTES))
        services = build_services(stores, settings, cursor_key=key)
        user = await plain.accounts.get_user_by_name(args.reader)
        assert user is not None, f"no {args.reader}: seed it first"
        cursor = (
            await deep_cursor(settings, user.id, args.order, args.days_back)
            if (args.days_back)
            else None
        )
        pages = []
        for _ in range(1 + args.samples):
            calls, rows = counting.snapshot()
            page = await services.timeline.page(user, args.order, cursor, LIMIT)
            await asyncio.sleep(0)
            pages.append(
                {
                    "items": len(page.items),
                    "queries": sum((counting.calls - calls).values()),
                    "merge_queries": sum((counting.calls - calls)[m] for m in MERGE_READS),
                    "merge_rows": sum((counting.rows - rows)[m] for m in MERGE_READS),
                    "by_call": dict(counting.calls - calls),
                    "rows_by_call": dict(counting.rows - rows),
                }
            )
        warm = pages[1:]
        walk = None
        if args.walk:  # from the cursor on, page after page, to the first LIMIT photos
            calls, rows = counting.snapshot()
            requests, items, at = 0, 0, cursor
            while items < LIMIT and requests < 1000:
                page = await services.timeline.page(user, args.order, at, LIMIT)
                requests, items, at = requests + 1, items + len(page.items), page.next_cursor
                if at is None:
                    break
            walk = {
                "requests": requests,
                "items": items,
                "merge_queries": sum((counting.calls - calls)[m] for m in MERGE_READS),
                "merge_rows": sum((counting.rows - rows)[m] for m in MERGE_READS),
            }

        def spread(field: str) -> dict[str, float]:
            values = [p[field] for p in warm]
            return {"p50": statistics.median(values), "max": max(values)}

        return {
            "settings": {
                "reader": args.reader,
                "followees": len(await plain.graph.following(user.id, None, 10_000)),
                "order": args.order,
                "days_back": args.days_back,
                "warm_pages": args.samples,
                "commit": report.machine()["commit"],
                "code": os.environ.get("PYTHONPATH", "this tree"),
            },
            "results": {
                "cold": pages[0],
                "warm_merge_rows": spread("merge_rows"),
                "warm_merge_queries": spread("merge_queries"),
                "warm_queries": spread("queries"),
                "warm_items": spread("items"),
                "warm_example": warm[-1],
                "walk_to_first_page_of_photos": walk,
            },
        }
    finally:
        await plain.close()


# ---- uploads -------------------------------------------------------------------------


def upload_images(count: int = 8) -> list[bytes]:
    from bench.seed import make_jpeg

    rng = random.Random(3)  # the images of `bench run --mix upload` (bench/__main__.py)
    return [make_jpeg(rng, rng.randrange(100_000, 3_000_000)) for _ in range(count)]


async def measure_uploads(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from bench.load import distinct
    from instastore.fanout import Fanout

    images = await asyncio.to_thread(upload_images)
    stores = await open_stores(settings)
    poster = await stores.accounts.get_user_by_name(args.poster)
    assert poster is not None, f"no {args.poster}: seed it with --fan-posters"
    followers, _ = await stores.graph.count_follows(poster.id)
    fanout = Fanout(stores.inbox, stores.graph, stores.photos, settings)
    latencies: dict[str, list[float]] = {"a": [], "b": []}
    cpu = {"a": 0.0, "b": 0.0}  # the serving processes' CPU seconds in the timed rounds
    done_rate: list[float] = []
    untimed: list[float] = []
    rng = random.Random(5)

    async def post_all(http: aiohttp.ClientSession, headers: dict[str, str], label: str) -> None:
        pending = iter(range(args.per_round))

        async def worker() -> None:
            for _ in pending:
                form = aiohttp.FormData()
                form.add_field("title", "fan out")
                form.add_field("file", io.BytesIO(distinct(rng.choice(images))), filename="b.jpg")
                t = time.perf_counter()
                async with http.post("/v1/photos", data=form, headers=headers) as resp:
                    body = await resp.read()
                    if resp.status != 201:
                        raise SystemExit(f"upload: {resp.status} {body[:300]!r}")
                latencies[label].append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))

    async def queue_empty() -> None:
        """Until the poster's fan-out queue is empty (polled: it is another process's)."""
        for _ in range(1_000_000):
            if not await stores.inbox.pending_fanouts(poster.id):
                return
            await asyncio.sleep(0.05)

    sessions = []

    async def side(base_url: str, label: str) -> abba.Side:
        headers = {"Authorization": f"Bearer {await login(base_url, args.poster)}"}
        http = aiohttp.ClientSession(base_url)
        sessions.append(http)

        pids = pids_on_port(urlsplit(base_url).port or 80)

        async def run(_: int) -> float:
            cpu_before = cpu_seconds(pids)
            started = time.perf_counter()
            await post_all(http, headers, label)
            acked = time.perf_counter() - started
            if label == "a":
                await queue_empty()
                done_rate.append(args.per_round / (time.perf_counter() - started))
                cpu[label] += cpu_seconds(pids) - cpu_before
            else:  # fan B's photos out here, untimed, so that A never does it
                cpu[label] += cpu_seconds(pids) - cpu_before
                t = time.perf_counter()
                await fanout.fan_out(poster.id)
                untimed.append(time.perf_counter() - t)
            return args.per_round / acked

        return run

    try:
        a = await side(args.base_url, "a")
        b = await side(args.versus, "b")
        rounds = await abba.alternate(a, b, args.rounds)
    finally:
        for http in sessions:
            await http.close()
        await stores.close()
    return {
        "settings": {
            "poster": args.poster,
            "followers": followers,
            "fanout_max_followers_a": settings.fanout_max_followers,
            "per_round": args.per_round,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "a": f"the service at {args.base_url} (fan-out on)",
            "a_commit": report.machine()["commit"],
            "b": f"the service at {args.versus} ({args.versus_label or 'fan-out off'})",
            "figure": "uploads per second to the last acknowledgement",
        },
        "results": {
            "a_upload": latency(latencies["a"]),
            "b_upload": latency(latencies["b"]),
            "p99_ratio_a_over_b": round(
                percentile(latencies["a"], 0.99) / percentile(latencies["b"], 0.99), 3
            ),
            "a_uploads_per_s_fanned_out": {
                "median": round(statistics.median(done_rate), 2),
                "per_round": [round(x, 2) for x in done_rate],
            },
            "b_fanout_after_round_s": [round(x, 2) for x in untimed],
            "server_cpu_ms_per_upload": {
                side: round(1000 * cpu[side] / (args.per_round * args.rounds), 1) for side in cpu
            },
            "a_extra_cpu_us_per_inbox_row": round(
                1e6 * (cpu["a"] - cpu["b"]) / (args.per_round * args.rounds * followers), 1
            )
            if followers <= settings.fanout_max_followers and followers
            else None,
            "rounds": rounds.summary(),
        },
    }


# ---- the timeline mix ----------------------------------------------------------------


async def measure_mix(args: argparse.Namespace) -> dict[str, Any]:
    from bench import load

    prepared = {}
    for url in (args.base_url, args.versus):
        tokens = [await login(url, f"reader{i}") for i in range(20)]
        prepared[url] = tokens
    figures: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}

    def side(url: str, label: str) -> abba.Side:
        async def run(i: int) -> float:
            plan = load.Plan(
                url,
                "timeline",
                args.seconds,
                32,
                prepared[url],
                [],
                [],
                [],
                [],
                str(args.out / "tmp"),
            )
            records, _ = load.run(plan, 2)  # blocks: nothing else runs meanwhile
            ok = [r for r in records if r[3] == 200]
            if len(ok) != len(records):
                raise SystemExit(f"{url}: {len(records) - len(ok)} timeline pages failed")
            figures[label].append(
                {"pages_per_s": len(ok) / args.seconds, **latency([r[2] * 1000 for r in ok])}
            )
            return len(ok) / args.seconds

        return run

    rounds = await abba.alternate(side(args.base_url, "a"), side(args.versus, "b"), args.rounds)
    return {
        "settings": {
            "mix": "timeline (2 load processes x 32 tasks, 20 readers, half top, half recent)",
            "seconds_per_side_per_round": args.seconds,
            "rounds": args.rounds,
            "a": f"the service at {args.base_url}",
            "a_commit": report.machine()["commit"],
            "b": f"the service at {args.versus} ({args.versus_label})",
            "figure": "timeline pages per second",
        },
        "results": {"rounds": rounds.summary(), "per_round": figures},
    }


def main() -> None:
    args = parse()
    settings = config.settings_from_args(args)
    if not settings.uses_cluster:
        raise SystemExit('needs the cluster adapter: eval "$(instastore cluster env)" first')
    if args.what == "pages":
        body = asyncio.run(measure_pages(args, settings))
    elif args.what == "rows":
        body = asyncio.run(measure_rows(args, settings))
    elif args.what == "uploads":
        body = asyncio.run(measure_uploads(args, settings))
    else:
        body = asyncio.run(measure_mix(args))
    body = {"machine": report.machine() | {"load_average": os.getloadavg()}, **body}
    name = args.name or f"fanout-{args.what}"
    report.write(args.out, name, body)
    print(json.dumps(body["results"], indent=1)[:4000])


if __name__ == "__main__":
    main()
