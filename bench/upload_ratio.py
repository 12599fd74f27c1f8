"""``python -m bench.upload_ratio``: upload throughput of a running ``instastore serve``
against Pillow alone, in alternating rounds (``bench/abba.py``: the median of the
per-round ratios).

The two sides are the ones ``python -m bench all`` compares minutes apart (its
``upload_vs_pillow`` target; it must stay no lower than 0.60x): side A is
the ``upload`` mix (``bench/load.py``: ``--processes`` load processes of
``--concurrency`` tasks each, POST /v1/photos with the same 8 generated 100 KB-3 MB
JPEGs as ``bench all``) for ``--seconds``; side B is ``refs.pillow_alone`` (the service's
own media pipeline on the same images in ``--processes`` processes, no service) for
the same time. Each side's figure is images per second. With ``--versus URL`` side B
is the same ``upload`` mix through another running service on the same store instead
(e.g. an export of the previous commit: commit against commit), and the server CPU per
upload of both is recorded.

Needs a service seeded by ``python -m bench seed`` (its readers log in to upload).
Writes ``bench/results/<--name>.json`` and ``.md`` with the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import abba, load, refs, report
from bench.__main__ import upload_images
from bench.procs import cpu_seconds, pids_on_port

RESULTS = Path(__file__).parent / "results"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.upload_ratio", description=__doc__)
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=15.0, help="per side per round")
    parser.add_argument("--concurrency", type=int, default=32, help="tasks per load process")
    parser.add_argument("--processes", type=int, default=2, help="load / Pillow processes")
    parser.add_argument("--readers", type=int, default=5, help="reader accounts to log in")
    parser.add_argument("--name", default="upload-vs-pillow", help="results file name")
    parser.add_argument(
        "--versus", default="", help="side B: the upload mix through this other service"
    )
    parser.add_argument("--versus-commit", default="", help="commit the --versus service runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    port = urlsplit(args.base_url).port or 80
    server = pids_on_port(port)
    if not server:
        raise SystemExit(f"nothing listens on {args.base_url}: start `instastore serve` first")
    images = upload_images()
    prepared = await load.prepare(args.base_url, args.readers, images)

    def plan(base_url: str) -> load.Plan:
        return load.Plan(
            base_url,
            "upload",
            args.seconds,
            args.concurrency,
            prepared["tokens"],  # the sessions are the store's: good on either service
            [],
            [],
            [],
            images,
            str(args.out / "tmp"),
        )

    def uploads_through(base_url: str, pids: list[int], cpu: list[float]) -> abba.Side:
        async def side(i: int) -> float:
            # Blocking on purpose: nothing else runs on this loop; the side owns the machine.
            before = cpu_seconds(pids)
            records, _ = load.run(plan(base_url), args.processes)
            ops = report.summarize(records, args.seconds)["upload"]
            cpu[0] += cpu_seconds(pids) - before
            cpu[1] += ops["ok"]
            if ops["errors"]:
                print(f"round {i + 1}: upload errors through {base_url}: {ops['errors']}")
            return float(ops["throughput_per_s"])

        return side

    async def pillow(i: int) -> float:
        return float(refs.pillow_alone(images, args.seconds, args.processes)["images_per_s"])

    server_cpu, versus_cpu = [0.0, 0], [0.0, 0]
    versus = pids_on_port(urlsplit(args.versus).port or 80) if args.versus else []
    if args.versus and not versus:
        raise SystemExit(f"nothing listens on {args.versus}")
    reference = uploads_through(args.versus, versus, versus_cpu) if args.versus else pillow
    rounds = await abba.alternate(
        uploads_through(args.base_url, server, server_cpu), reference, args.rounds
    )
    return {
        "machine": report.machine(),
        "settings": {
            "base_url": args.base_url,
            "server_processes": len(server),
            "rounds": args.rounds,
            "seconds_per_side": args.seconds,
            "concurrency": args.concurrency,
            "processes": args.processes,
            "images": [len(x) for x in images],
            "a": "uploads per second through the service (upload mix)",
            "b": f"uploads per second through {args.versus} (upload mix)"
            if args.versus
            else "images per second through the media pipeline alone (Pillow)",
            "versus": args.versus,
            "versus_commit": args.versus_commit,
        },
        "results": rounds.summary()
        | {"server_cpu_ms_per_upload": per_upload(server_cpu)}
        | ({"versus_cpu_ms_per_upload": per_upload(versus_cpu)} if args.versus else {}),
        "targets": {}
        if args.versus
        else {
            "upload_vs_pillow": {
                "measured": rounds.summary()["median_ratio"],
                "target": ">= 0.80",
                "met": rounds.summary()["median_ratio"] >= 0.80,
            }
        },
    }


def per_upload(cpu: list[float]) -> float:
    """Milliseconds of server CPU per acknowledged upload."""
    return round(cpu[0] * 1000 / max(1, cpu[1]), 1)


def main() -> None:
    args = parse()
    body = asyncio.run(measure(args))
    report.write(args.out, args.name, body)
    print(json.dumps({k: v for k, v in body["results"].items() if k != "per_round"}, indent=2))


if __name__ == "__main__":
    main()
