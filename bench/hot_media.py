"""``python -m bench.hot_media``: a hot media GET (a public photo's "large" rendition,
in the service's memory after the first read) under wrk at 64 connections, against nginx
serving the same bytes from a file, or with ``--versus URL`` against another running
service on the same store (an export of another commit: commit against commit), in
alternating rounds (``bench/abba.py``: the median of the per-round ratios). With both
``--versus`` and ``--with-nginx`` every round runs the three (the order rotating), and
each service is also reported against nginx in the same rounds. Records the server CPU
per request of each service (``/proc`` of the processes on its port).

Needs a service seeded by ``python -m bench seed`` (a reader logs in to find a photo).
Writes ``bench/results/<--name>.json`` and ``.md`` with the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
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
    parser.add_argument(
        "--with-nginx", action="store_true", help="with --versus: nginx in every round too"
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration of each side")
    parser.add_argument("--name", default="hot-media", help="results file name")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def wrk_side(
    url: str, seconds: int, pids: list[int], cpu: list[float], each: list[float] | None = None
) -> abba.Side:
    """wrk on ``url``; adds the server's CPU seconds and the requests to ``cpu``, and each
    round's CPU microseconds per request to ``each``."""

    async def side(i: int) -> float:
        before = cpu_seconds(pids)
        figure = await asyncio.to_thread(refs.wrk, url, seconds, CONNECTIONS)
        spent, answered = cpu_seconds(pids) - before, figure["requests_per_s"] * seconds
        cpu[0] += spent
        cpu[1] += answered
        if each is not None:
            each.append(spent * 1e6 / max(1.0, answered))
        return float(figure["requests_per_s"])

    return side


def cpu_rounds(a: list[float], b: list[float]) -> dict[str, Any]:
    """Server CPU per request of two services round by round, and the median of the
    per-round ratios A/B with its range (lower is better)."""
    ratios = [x / y for x, y in zip(a, b, strict=True) if y]
    return {
        "median_ratio": round(statistics.median(ratios), 3),
        "min_ratio": round(min(ratios), 3),
        "max_ratio": round(max(ratios), 3),
        "a_us": [round(x, 1) for x in a],
        "b_us": [round(x, 1) for x in b],
        "ratio": [round(r, 3) for r in ratios],
    }


async def three_way(
    a: abba.Side, b: abba.Side, n: abba.Side, rounds: int
) -> tuple[abba.Rounds, dict[str, Any]]:
    """Every round runs A, B and nginx (N), the order rotating (A B N, B N A, N A B, ...)
    so that none always runs first or last; A/B, A/N and B/N per round, as abba does for
    two."""
    ab, an, bn = abba.Rounds(), abba.Rounds(), abba.Rounds()
    sides = {"a": a, "b": b, "n": n}
    order = ["a", "b", "n"]
    for i in range(rounds):
        figures = {}
        for name in order[i % 3 :] + order[: i % 3]:
            figures[name] = await sides[name](i)
        for pair, (x, y) in ((ab, "ab"), (an, "an"), (bn, "bn")):
            pair.a.append(figures[x])
            pair.b.append(figures[y])
        print(
            f"round {i + 1}/{rounds}: A {figures['a']:.0f}, B {figures['b']:.0f}, "
            f"nginx {figures['n']:.0f}; A/B {figures['a'] / figures['b']:.3f}",
            flush=True,
        )
    return ab, {"a_vs_nginx": an.summary(), "b_vs_nginx": bn.summary()}


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
    against: dict[str, Any] = {}
    a_each: list[float] = []
    b_each: list[float] = []
    a = wrk_side(args.base_url + path, args.seconds, server, server_cpu, a_each)
    if args.versus:
        versus = pids_on_port(urlsplit(args.versus).port or 80)
        if not versus:
            raise SystemExit(f"nothing listens on {args.versus}")
        refs.wrk(args.versus + path, 1, 8)
        b = wrk_side(args.versus + path, args.seconds, versus, versus_cpu, b_each)
        if args.with_nginx:
            with refs.Nginx({"large.jpg": data}) as nginx:
                n = wrk_side(
                    f"http://127.0.0.1:{nginx.port}/large.jpg", args.seconds, [], [0.0, 0.0]
                )
                rounds, against = await three_way(a, b, n, args.rounds)
        else:
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
            "with_nginx": bool(against),
        },
        "results": rounds.summary()
        | {"server_cpu_us_per_request": per_request(server_cpu)}
        | ({"versus_cpu_us_per_request": per_request(versus_cpu)} if args.versus else {})
        | ({"cpu_per_request_rounds": cpu_rounds(a_each, b_each)} if args.versus else {})
        | against,
    }


def main() -> None:
    args = parse()
    body = asyncio.run(measure(args))
    report.write(args.out, args.name, body)
    print(json.dumps({k: v for k, v in body["results"].items() if k != "per_round"}, indent=2))


if __name__ == "__main__":
    main()
