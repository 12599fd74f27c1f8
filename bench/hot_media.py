"""``python -m bench.hot_media``: a hot media GET (a public photo's "large" rendition,
in the service's memory after the first read) under wrk at 64 connections, against nginx
serving the same bytes from a file, or with ``--versus URL`` against another running
service on the same store (an export of another commit: commit against commit), in
alternating rounds (``bench/abba.py``: the median of the per-round ratios). Records the
server CPU per request of each service (``/proc`` of the processes on its port).

Needs a service seeded by ``python -m bench seed`` (a reader logs in to find a photo).
Writes ``bench/results/<--name>.json`` and ``.md`` with the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import abba, load, refs, report
from bench.procs import cpu_seconds, pids_on_port

RESULTS = Path(__file__).parent / "results"
CONNECTIONS = 64  # as `bench all` and the figures


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.hot_media", description=__doc__)
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--versus", default="", help="side B: this other service, not nginx")
    parser.add_argument("--versus-commit", default="", help="commit the --versus service runs")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration of each side")
    parser.add_argument("--name", default="hot-media", help="results file name")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def wrk_side(url: str, seconds: int, pids: list[int], cpu: list[float]) -> abba.Side:
    async def side(i: int) -> float:
        before = cpu_seconds(pids)
        figure = await asyncio.to_thread(refs.wrk, url, seconds, CONNECTIONS)
        cpu[0] += cpu_seconds(pids) - before
        cpu[1] += figure["requests_per_s"] * seconds
        return float(figure["requests_per_s"])

    return side


def per_request(cpu: list[float]) -> float:
    """Microseconds of server CPU per request."""
    return round(cpu[0] * 1e6 / max(1.0, cpu[1]), 1)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    server = pids_on_port(urlsplit(args.base_url).port or 80)
    if not server:
        raise SystemExit(f"nothing listens on {args.base_url}: start `instastore serve` first")
    prepared = await load.prepare(args.base_url, 1, [])
    path = prepared["hot_media"][len(prepared["hot_media"]) // 2]  # the first "large"
    data = await asyncio.to_thread(lambda: urllib.request.urlopen(args.base_url + path).read())
    refs.wrk(args.base_url + path, 1, 8)  # in the rendition cache from here on
    server_cpu, versus_cpu = [0.0, 0.0], [0.0, 0.0]
    a = wrk_side(args.base_url + path, args.seconds, server, server_cpu)
    if args.versus:
        versus = pids_on_port(urlsplit(args.versus).port or 80)
        if not versus:
            raise SystemExit(f"nothing listens on {args.versus}")
        refs.wrk(args.versus + path, 1, 8)
        b = wrk_side(args.versus + path, args.seconds, versus, versus_cpu)
        rounds = await abba.alternate(a, b, args.rounds)
    else:
        with refs.Nginx({"large.jpg": data}) as nginx:
            b = wrk_side(f"http://127.0.0.1:{nginx.port}/large.jpg", args.seconds, [], [0.0, 0.0])
            rounds = await abba.alternate(a, b, args.rounds)
    return {
        "machine": report.machine(),
        "settings": {
            "base_url": args.base_url,
            "server_processes": len(server),
            "rounds": args.rounds,
            "seconds_per_side": args.seconds,
            "connections": CONNECTIONS,
            "bytes": len(data),
            "a": "hot large rendition through the service, requests/s",
            "b": f"the same through {args.versus}, requests/s"
            if args.versus
            else "nginx serving the same bytes from a file, requests/s",
            "versus": args.versus,
            "versus_commit": args.versus_commit,
        },
        "results": rounds.summary()
        | {"server_cpu_us_per_request": per_request(server_cpu)}
        | ({"versus_cpu_us_per_request": per_request(versus_cpu)} if args.versus else {}),
    }


def main() -> None:
    args = parse()
    body = asyncio.run(measure(args))
    report.write(args.out, args.name, body)
    print(json.dumps({k: v for k, v in body["results"].items() if k != "per_round"}, indent=2))


if __name__ == "__main__":
    main()
