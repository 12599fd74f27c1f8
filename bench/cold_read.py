"""``python -m bench.cold_read``: cold media GET through a running ``instastore serve``
against direct WebHDFS OPEN of the same bytes, in alternating rounds (``bench/abba.py``).

Each round, side A fetches ``--per-round`` "large" renditions that no request has asked
the service for before (so they are in none of its caches: each photo's record and
bytes come from Cassandra and HDFS), with ``--concurrency`` requests in flight; side B
fetches the very same blobs straight from WebHDFS (OPEN at the NameNode, followed to the
DataNode, on one pooled client). The figure of each side is requests per second; the
result is the median of the per-round ratios A / B, written to
``bench/results/<--name>.json`` and ``.md`` with the commit.

With ``--versus URL`` side B is another running service instead (e.g. the previous
commit, on another port): the same cold photos through both, a before/after ratio with
the background load cancelled the same way.

Needs the cluster adapter's settings (``eval "$(instastore cluster env)"``, the
keyspace and HDFS root of a ``python -m bench seed`` dataset) to find each photo's blob.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from bench import abba, load, report
from bench.procs import cpu_seconds, pids_on_port
from instastore import config
from instastore.config import Settings
from instastore.lifecycle import volumes
from instastore.storage import open_stores
from instastore.storage.hdfs.blobs import HdfsBlobStore
from instastore.storage.hdfs.webhdfs import WebHdfs

RESULTS = Path(__file__).parent / "results"
LOOKUPS_IN_FLIGHT = 32  # concurrent photo record reads while locating the blobs


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_read", description=__doc__)
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=150, help="cold photos per side per round")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--name", default="cold-read", help="results file name (no suffix)")
    parser.add_argument(
        "--service-commit", default="", help="commit the service runs, if not this checkout's"
    )
    parser.add_argument(
        "--versus", default="", help="side B: cold GETs through this other service, not WebHDFS"
    )
    parser.add_argument("--versus-commit", default="", help="commit the --versus service runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    config.add_arguments(parser)
    return parser.parse_args()


async def blob_urls(settings: Settings, media_urls: list[str]) -> list[str]:
    """The WebHDFS OPEN URL of each media URL's bytes (same photo, same rendition): its
    landed file, or the range of its needle in a volume."""
    stores = await open_stores(settings)
    gate = asyncio.Semaphore(LOOKUPS_IN_FLIGHT)
    paths = HdfsBlobStore(WebHdfs(settings.webhdfs_url, settings.hdfs_user), settings)

    async def one(url: str) -> str:
        _, _, _, photo_id, _, name = url.split("?")[0].split("/")
        async with gate:
            photo = await stores.photos.get_photo(int(photo_id))
        locator = next(r.locator for r in photo.renditions if r.name == name)
        query = f"op=OPEN&user.name={settings.hdfs_user}"
        if volumes.is_needle(locator):
            needle = volumes.parse_locator(locator)
            locator = needle.volume_key
            query += f"&offset={needle.offset}&length={needle.length}"
        return f"{settings.webhdfs_url}/webhdfs/v1{paths.path(locator)}?{query}"

    try:
        return await asyncio.gather(*(one(u) for u in media_urls))
    finally:
        await stores.close()
        await paths.close()


async def fetch_all(http: aiohttp.ClientSession, urls: list[str], concurrency: int) -> float:
    """GET every URL (``concurrency`` at a time, each body read whole); requests per second.
    Any answer but 200 stops the run: a figure with errors in it would mean nothing."""
    pending = iter(urls)

    async def worker() -> None:
        for url in pending:
            async with http.get(url) as resp:
                body = await resp.read()
                if resp.status != 200 or not body:
                    raise SystemExit(f"GET {url} answered {resp.status}: {body[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(urls) / (time.perf_counter() - started)


async def measure(args: argparse.Namespace, settings: Settings) -> dict:
    prepared = await load.prepare(args.base_url, 1, [])
    cold = prepared["cold_media"]
    need = args.rounds * args.per_round
    if len(cold) < need:
        raise SystemExit(f"{len(cold)} cold photos; {need} needed: seed more or ask for fewer")
    cold = cold[:need]
    if args.versus:
        direct = [args.versus.rstrip("/") + url for url in cold]
    else:
        direct = await blob_urls(settings, cold)
    batches = [slice(i * args.per_round, (i + 1) * args.per_round) for i in range(args.rounds)]
    server = pids_on_port(urlsplit(args.base_url).port or 80)
    versus = pids_on_port(urlsplit(args.versus).port or 80) if args.versus else []
    server_cpu, versus_cpu = [0.0], [0.0]
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(args.base_url, connector=connector) as service,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as webhdfs,
    ):

        async def side_a(i: int) -> float:
            before = cpu_seconds(server)
            figure = await fetch_all(service, cold[batches[i]], args.concurrency)
            server_cpu[0] += cpu_seconds(server) - before
            return figure

        async def side_b(i: int) -> float:
            before = cpu_seconds(versus)
            figure = await fetch_all(webhdfs, direct[batches[i]], args.concurrency)
            versus_cpu[0] += cpu_seconds(versus) - before
            return figure

        rounds = await abba.alternate(side_a, side_b, args.rounds)
    return {
        "machine": report.machine(),
        "settings": {
            "base_url": args.base_url,
            "service_commit": args.service_commit or report.machine()["commit"],
            "server_processes": len(server),
            "versus": args.versus,
            "versus_commit": args.versus_commit,
            "rounds": args.rounds,
            "per_round": args.per_round,
            "concurrency": args.concurrency,
            "a": "cold media GET (large rendition) through the service, requests/s",
            "b": f"cold media GET of the same photos through {args.versus}, requests/s"
            if args.versus
            else "direct WebHDFS OPEN of the same blob (NameNode, then DataNode), requests/s",
        },
        "results": rounds.summary()
        | {"server_cpu_ms_per_cold_get": round(server_cpu[0] * 1000 / need, 2)}
        | ({"versus_cpu_ms_per_cold_get": round(versus_cpu[0] * 1000 / need, 2)} if versus else {}),
    }


def main() -> None:
    args = parse()
    settings = config.settings_from_args(args)
    if not settings.uses_cluster:
        raise SystemExit('needs the cluster adapter: eval "$(instastore cluster env)" first')
    body = asyncio.run(measure(args, settings))
    report.write(args.out, args.name, body)
    print(json.dumps({k: v for k, v in body["results"].items() if k != "per_round"}, indent=2))


if __name__ == "__main__":
    main()
