"""Hot media behind the balancer: three `instastore serve` hosts behind the nginx of
deploy/nginx.conf, a public photo's feed rendition read with wrk (64 connections)

- through nginx's media cache (A), against nginx serving the same bytes from a file (B);
- through nginx proxying to the hosts without its cache (C), against the same B;

in alternating rounds (bench/abba.py: the median of the per-round ratios). The hosts run
on the settings' store (the cluster's when INSTASTORE_CASSANDRA_HOSTS and
INSTASTORE_WEBHDFS_URL are set, else the embedded default in a folder of its own).

    python -m bench.balancer [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path

import aiohttp

from bench import abba, refs, report
from bench.hosts import Balancer, bench_env, free_port

RESULTS = Path(__file__).resolve().parent / "results"


def _extra(static_port: int, prefix_www: Path) -> str:
    """A server block beside the balancer's: the same bytes as a file (the reference), and
    the media route proxied without the cache."""
    return f"""
    server {{
        listen 127.0.0.1:{static_port};
        location /static/ {{
            alias {prefix_www}/;
        }}
        location /v1/media/ {{
            proxy_pass http://instastore;
        }}
    }}
"""


async def _photo(base: str, data: bytes) -> tuple[str, bytes]:
    """Sign up, upload a public photo; its feed rendition's URL and bytes."""
    async with aiohttp.ClientSession(base) as http:
        body = {"username": f"bal{uuid.uuid4().hex[:8]}", "password": "bench balancer"}
        await http.post("/v1/users", json=body)
        token = (await (await http.post("/v1/sessions", json=body)).json())["token"]
        form = aiohttp.FormData()
        form.add_field("file", data, filename="p.jpg", content_type="image/jpeg")
        form.add_field("title", "hot media")
        async with http.post(
            "/v1/photos", data=form, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            photo = await resp.json()
        url = photo["media"]["large"]  # the feed rendition every viewer reads
        async with http.get(url) as resp:
            assert resp.headers["Cache-Control"].startswith("public"), resp.headers
            return url, await resp.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration of each side")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()

    import random

    from bench.seed import make_jpeg

    folder = Path(tempfile.mkdtemp(prefix="bench-balancer-"))
    env = bench_env(folder)
    static_port = free_port()
    www = Path(tempfile.mkdtemp(prefix="bench-balancer-www-"))
    www.chmod(0o755)
    balancer = Balancer.up(env, folder, extra=_extra(static_port, www))
    try:
        upload = make_jpeg(random.Random(7), 1_000_000)  # a 1 MB photo, as the bench's pool
        url, data = asyncio.run(_photo(balancer.base, upload))
        (www / "feed.jpg").write_bytes(data)
        (www / "feed.jpg").chmod(0o644)
        cached = balancer.base + url
        uncached = f"http://127.0.0.1:{static_port}{url}"
        static = f"http://127.0.0.1:{static_port}/static/feed.jpg"
        refs.wrk(cached, 1, 8)  # the cache holds it from here on

        def side(target: str) -> abba.Side:
            async def run(i: int) -> float:
                figure = await asyncio.to_thread(refs.wrk, target, args.seconds, args.connections)
                return float(figure["requests_per_s"])

            return run

        print("nginx's media cache (A) against nginx serving the file (B) ...", flush=True)
        cache = asyncio.run(abba.alternate(side(cached), side(static), args.rounds))
        print("nginx proxying to the hosts, no cache (A) against the file (B) ...", flush=True)
        proxy = asyncio.run(abba.alternate(side(uncached), side(static), args.rounds))
    finally:
        balancer.down()
    body = {
        "machine": report.machine(),
        "bytes": len(data),
        "hosts": len(balancer.hosts),
        "connections": args.connections,
        "seconds_per_side": args.seconds,
        "store": "cluster" if env.get("INSTASTORE_CASSANDRA_HOSTS") else "embedded",
        "cache_vs_file": cache.summary(),
        "proxy_vs_file": proxy.summary(),
        "results": {
            "cache_vs_file": cache.summary()["median_ratio"],
            "proxy_vs_file": proxy.summary()["median_ratio"],
        },
        "targets": {"cache_vs_file": ">= 0.9"},
    }
    report.write(RESULTS, "balancer-media", body)
    print(
        f"cache / file: {body['cache_vs_file']['median_ratio']}x; "
        f"proxy (no cache) / file: {body['proxy_vs_file']['median_ratio']}x"
    )


if __name__ == "__main__":
    main()
