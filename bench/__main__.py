"""python -m bench seed|run|all — see bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench import load, refs, report, seed, video
from bench.procs import cpu_seconds, pids_on_port
from instastore import config
from instastore.storage import open_stores

RESULTS = Path(__file__).parent / "results"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    s = commands.add_parser(
        "seed", help="write the dataset (users, follows, media pool, photo records)"
    )
    config.add_arguments(s)
    s.add_argument("--posters", type=int, default=1000)
    s.add_argument("--readers", type=int, default=50)
    s.add_argument("--photos", type=int, default=100_000)
    s.add_argument(
        "--pool", type=int, default=40, help="distinct real JPEGs behind the photo records"
    )
    s.add_argument("--days", type=int, default=60)
    s.add_argument("--follows-per-reader", type=int, default=100)
    s.add_argument(
        "--wide", type=int, default=0, help="a reader wide0 following this many accounts"
    )
    s.add_argument(
        "--quiet-photos", type=int, default=10, help="photos of each account only wide0 follows"
    )
    s.add_argument(
        "--fan-posters",
        default="",
        help="comma-separated follower counts: an account fan<N> with N (synthetic) followers",
    )
    s.add_argument(
        "--no-fanout", action="store_true", help="leave the timeline inboxes empty (queued)"
    )

    for name, help_text in (
        ("run", "drive one mix against a running service"),
        ("all", "every mix, the references and the targets: bench/results/"),
    ):
        r = commands.add_parser(name, help=help_text)
        r.add_argument("--base-url", default="http://127.0.0.1:8080")
        r.add_argument("--duration", type=float, default=20.0, help="seconds per mix")
        r.add_argument("--concurrency", type=int, default=32, help="tasks per load process")
        r.add_argument("--processes", type=int, default=2, help="load generator processes")
        r.add_argument("--readers", type=int, default=20, help="reader accounts to log in")
        r.add_argument("--out", type=Path, default=RESULTS)
        if name == "run":
            r.add_argument("--mix", choices=sorted(load.MIXES), default="read-heavy")
        else:
            config.add_arguments(r)
            r.add_argument("--video-mib", type=int, default=1024)
    return parser.parse_args()


def upload_images(count: int = 8) -> list[bytes]:
    rng = random.Random(3)
    return [seed.make_jpeg(rng, rng.randrange(100_000, 3_000_000)) for _ in range(count)]


def run_mix(args, prepared: dict, uploads: list[bytes], mix: str, port: int) -> tuple[dict, list]:
    plan = load.Plan(
        args.base_url,
        mix,
        args.duration,
        args.concurrency,
        prepared["tokens"],
        prepared["hot_media"],
        prepared["cold_media"],
        prepared["photo_ids"],
        uploads,
        str(args.out / "tmp"),
    )
    pids = pids_on_port(port)
    before = cpu_seconds(pids)
    started = time.monotonic()
    records, load_cpu = load.run(plan, args.processes)
    elapsed = time.monotonic() - started
    body = {
        "machine": report.machine(),
        "settings": {
            "mix": mix,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "processes": args.processes,
            "server_processes": len(pids),
        },
        "ops": report.summarize(records, args.duration),
        "cpu": {
            "server_s": round(cpu_seconds(pids) - before, 1),
            "load_generator_s": round(load_cpu, 1),
            "wall_s": round(elapsed, 1),
        },
    }
    report.write(args.out, f"mix-{mix}", body, records)
    return body, records


def main() -> None:
    args = parse()
    if args.command == "seed":
        settings = config.settings_from_args(args)
        result = asyncio.run(
            seed.seed(
                settings,
                args.posters,
                args.readers,
                args.photos,
                args.pool,
                args.days,
                args.follows_per_reader,
                wide=args.wide,
                quiet_photos=args.quiet_photos,
                fan_posters=tuple(int(n) for n in args.fan_posters.split(",") if n),
                fanout=not args.no_fanout,
            )
        )
        print(json.dumps(result))
        return

    port = urlsplit(args.base_url).port or 80
    if not pids_on_port(port):
        sys.exit(f"nothing listens on {args.base_url}: start `instastore serve` first")
    uploads = upload_images()
    prepared = asyncio.run(load.prepare(args.base_url, args.readers, uploads))
    if args.command == "run":
        if args.mix == "social":
            print("uploading tagged photos for the tag pages ...", flush=True)
            asyncio.run(load.tagged_photos(args.base_url, prepared["tokens"][0], uploads, 60))
        body, _ = run_mix(args, prepared, uploads, args.mix, port)
        print(json.dumps(body["ops"], indent=2))
        return
    run_all(args, prepared, uploads, port)


def run_all(args, prepared: dict, uploads: list[bytes], port: int) -> None:
    settings = config.settings_from_args(args)
    summary: dict = {
        "machine": report.machine(),
        "settings": {
            "base_url": args.base_url,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "processes": args.processes,
            "server_processes": len(pids_on_port(port)),
        },
    }
    mixes = {}
    for mix in ("read-heavy", "media", "media-cold", "timeline", "search", "upload"):
        print(f"mix {mix} ...", flush=True)
        mixes[mix], _ = run_mix(args, prepared, uploads, mix, port)
    summary["mixes"] = {m: b["ops"] for m, b in mixes.items()}

    print("reference: direct WebHDFS OPEN ...", flush=True)
    hot_photo = prepared["hot_media"][50]  # a "large" rendition
    stores = asyncio.run(open_stores(settings)) if settings.uses_cluster else None
    webhdfs = None
    if stores is not None:
        photo_id = int(hot_photo.split("/")[3])

        async def locate():
            try:
                photo = await stores.photos.get_photo(photo_id)
                return next(r.locator for r in photo.renditions if r.name == "large")
            finally:
                await stores.close()

        locator = asyncio.run(locate())
        hdfs_url = (
            f"{settings.webhdfs_url}/webhdfs/v1{settings.hdfs_root.rstrip('/')}/blobs/{locator}"
            f"?op=OPEN&user.name={settings.hdfs_user}"
        )
        plan = load.Plan(
            "",
            "media",
            args.duration,
            args.concurrency,
            prepared["tokens"],
            [hdfs_url],
            [],
            [],
            [],
            str(args.out / "tmp"),
        )
        records, _ = load.run(plan, args.processes)
        webhdfs = report.summarize(records, args.duration)["media"]
        summary["webhdfs_direct"] = webhdfs

    print("reference: nginx vs the service, with wrk ...", flush=True)
    import urllib.request

    data = urllib.request.urlopen(args.base_url + hot_photo).read()
    with refs.Nginx({"large.jpg": data}) as nginx:
        nginx_wrk = refs.wrk(f"http://127.0.0.1:{nginx.port}/large.jpg", int(args.duration), 64)
    service_wrk = refs.wrk(args.base_url + hot_photo, int(args.duration), 64)
    summary["wrk"] = {"nginx": nginx_wrk, "service": service_wrk, "bytes": len(data)}

    raw = None
    if settings.uses_cluster:
        print("reference: raw CQL of a timeline page ...", flush=True)
        reader = asyncio.run(_reader_id(settings))
        raw = refs.raw_cql_timeline(settings, reader)
        raw.pop("timings_ms")
        summary["raw_cql_timeline"] = raw
        print("timeline of reader0 through the service ...", flush=True)
        summary["timeline_reader0"] = asyncio.run(
            _timeline_latency(args.base_url, prepared["tokens"][0])
        )

    print("reference: Pillow alone ...", flush=True)
    pillow = refs.pillow_alone(uploads, args.duration, args.processes)
    summary["pillow_alone"] = pillow

    print(f"video: {args.video_mib} MiB up and down ...", flush=True)
    summary["video_memory"] = asyncio.run(
        video.video_memory(args.base_url, prepared["tokens"][0], port, args.video_mib)
    )

    service_media = mixes["media"]["ops"]["media"]["throughput_per_s"]
    cold = mixes["media-cold"]["ops"].get("media_cold", {}).get("throughput_per_s", 0)
    upload = mixes["upload"]["ops"]["upload"]["throughput_per_s"]
    targets = {
        "hot_media_vs_webhdfs": _target(
            service_media / webhdfs["throughput_per_s"] if webhdfs else None, ">=", 2.0
        ),
        "hot_media_vs_nginx": _target(
            service_wrk["requests_per_s"] / nginx_wrk["requests_per_s"], ">=", 0.5
        ),
        "cold_media_vs_webhdfs": _target(
            cold / webhdfs["throughput_per_s"] if webhdfs else None, ">=", 0.85
        ),
        "timeline_p99_ms": _target(summary.get("timeline_reader0", {}).get("p99_ms"), "<=", 50),
        "timeline_p99_vs_raw_cql": _target(
            summary["timeline_reader0"]["p99_ms"] / raw["p99_ms"] if raw else None, "<=", 1.5
        ),
        "upload_vs_pillow": _target(upload / pillow["images_per_s"], ">=", 0.8),
        "video_memory_growth_mb": _target(summary["video_memory"]["growth_mb"], "<", 50),
    }
    summary["targets"] = targets
    report.write(
        args.out,
        "summary",
        {
            "machine": summary["machine"],
            "settings": summary["settings"],
            "results": {
                k: v
                for k, v in summary.items()
                if k not in ("machine", "settings", "mixes", "targets")
            },
            "targets": targets,
        },
    )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")  # the whole record
    print(json.dumps(targets, indent=2))


def _target(value, op: str, bound: float) -> dict:
    if value is None:
        return {
            "measured": None,
            "target": f"{op} {bound}",
            "met": False,
            "note": "not measured (needs the cluster adapter)",
        }
    met = value >= bound if op == ">=" else value <= bound if op == "<=" else value < bound
    return {"measured": round(value, 3), "target": f"{op} {bound}", "met": met}


async def _reader_id(settings) -> int:
    stores = await open_stores(settings)
    try:
        return (await stores.accounts.get_user_by_name("reader0")).id
    finally:
        await stores.close()


async def _timeline_latency(base_url: str, token: str, pages: int = 300) -> dict:
    """reader0 follows every poster (1,000): sequential first pages, as a user opening the app."""
    import aiohttp

    timings = []
    async with aiohttp.ClientSession(base_url) as http:
        for _ in range(pages):
            started = time.perf_counter()
            async with http.get(
                "/v1/timeline?order=recent&limit=20", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                await r.read()
                assert r.status == 200
            timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "pages": pages,
        "p50_ms": round(timings[len(timings) // 2], 2),
        "p99_ms": round(timings[min(len(timings) - 1, int(0.99 * len(timings)))], 2),
    }


if __name__ == "__main__":
    main()
