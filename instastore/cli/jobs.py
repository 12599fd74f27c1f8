"""The jobs over the service's stores: ``instastore purge``, ``gc``, ``pack``, ``compact``,
``fanout`` and ``storage stats``. Each opens the stores the settings name, runs, prints one summary
and closes them; a storage job (``JOB_ITEMS``) also holds the cluster-wide job lock."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from instastore import config
from instastore.cli import logs
from instastore.errors import InstastoreError
from instastore.limits import LANDED_GRACE_S

if TYPE_CHECKING:  # imported where a command needs them, so `instastore --help` stays quick
    from instastore.config import Settings
    from instastore.ids import IdGenerator
    from instastore.storage.ports import Stores

_T = TypeVar("_T")

# A storage job's command -> what in its report counts as its items done (its progress).
JOB_ITEMS: dict[str, Callable[[Any], int]] = {
    "purge": lambda report: report.purged,
    "gc": lambda report: report.removed,
    "pack": lambda report: report.photos,
    "compact": lambda report: report.compacted,
}


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # The commands that act on the service's stores take every setting as a flag.
    for name, help_text, run in (
        ("purge", "remove for good the photos deleted more than retention_days ago", _purge),
        ("gc", "remove blobs no photo record points at, and leftovers of crashed writes", _gc),
        ("pack", "pack the landed blobs of photos older than --min-age into volumes", _pack),
        (
            "compact",
            "rewrite volumes whose dead share passes --threshold, live needles only",
            _compact,
        ),
        (
            "fanout",
            "finish the timeline fan-outs left queued (serving processes do it every "
            "30 s or so); with --owner, fan out that account's photos now",
            _fanout,
        ),
    ):
        command = commands.add_parser(name, help=help_text)
        config.add_arguments(command)
        command.set_defaults(run=run)
        if name == "pack":
            command.add_argument(
                "--min-age",
                type=_seconds,
                default=300,
                metavar="SECONDS",
                help="pack only photos at least this old (default 300; 0 packs everything)",
            )
            command.add_argument(
                "--scan-all",
                action="store_true",
                help="first queue every record with landed blobs (a full scan: once after "
                "upgrading to schema 006, or to migrate photos stored the old way)",
            )

        if name in ("pack", "compact"):
            command.add_argument(
                "--landed-grace",
                type=_seconds,
                default=LANDED_GRACE_S,
                metavar="SECONDS",
                help="after switching records, wait this long for the record caches of "
                f"running servers before removing the bytes moved (default {LANDED_GRACE_S:g}, "
                "twice the caches' life; 0 only when no server runs)",
            )
        if name in JOB_ITEMS:
            command.add_argument(
                "--metrics-file",
                type=Path,
                default=None,
                metavar="PATH",
                help="write this job's metrics there in the Prometheus text format, every "
                "10 s while it runs and at the end (for node_exporter's textfile collector)",
            )
        if name == "fanout":
            command.add_argument(
                "--owner",
                type=int,
                default=None,
                metavar="USER_ID",
                help="fan out this account's queued photos and any above its mark",
            )
        if name == "compact":
            command.add_argument(
                "--threshold",
                type=_share,
                default=0.5,
                metavar="SHARE",
                help="rewrite volumes at least this share dead (0 to 1; default 0.5)",
            )
    storage = commands.add_parser("storage", help="look at what the stores hold")
    storage_actions = storage.add_subparsers(dest="action", required=True, metavar="ACTION")
    stats = storage_actions.add_parser(
        "stats", help="photos, volumes, landed blobs, NameNode objects, raw bytes, dead bytes"
    )
    config.add_arguments(stats)
    stats.add_argument("--json", action="store_true", help="print one JSON document")
    stats.set_defaults(run=_storage_stats)


def _with_stores(
    args: argparse.Namespace, job: Callable[[Stores, Settings, IdGenerator], Awaitable[_T]]
) -> _T:
    """Open the stores the settings name, run ``await job(stores, settings, ids)``, close
    them. A storage job (``JOB_ITEMS``) holds the storage job lock while it runs (one job
    at a time, cluster-wide: ``instastore.leases``) and a worker number for the ids it
    makes, is counted in the job metrics, and with ``--metrics-file`` they are written
    there."""
    import asyncio

    from instastore import leases, metrics
    from instastore.ids import IdGenerator
    from instastore.storage import open_stores

    settings = config.settings_from_args(args)
    logs.configure(settings.log_level)
    name = args.command if args.command in JOB_ITEMS else None

    async def run() -> _T:
        stores = await open_stores(settings, meter=name is not None)
        try:
            if name is None:
                return await job(stores, settings, IdGenerator(settings.fixed_worker_id or 0))
            with metrics.job(name), metrics.textfile_every(args.metrics_file):
                async with leases.job_lease(stores.leases, f"instastore {name}"):
                    # New volume ids under a worker number of its own (always a free one:
                    # a fixed worker_id is the server's on this host).
                    worker = await leases.WorkerIds.start(stores.leases, None, f"instastore {name}")
                    try:
                        report = await job(stores, settings, worker.generator)
                    finally:
                        await worker.close()
            metrics.job_progress(name, JOB_ITEMS[name](report))
            return report
        finally:
            await stores.close()

    if name is None or args.metrics_file is None:
        return asyncio.run(run())
    try:
        return asyncio.run(run())
    finally:
        metrics.write_textfile(args.metrics_file)


def _purge(args: argparse.Namespace) -> None:
    from instastore.lifecycle.purge import purge

    report = _with_stores(
        args,
        lambda stores, settings, _: purge(stores.photos, stores.blobs, settings, progress=print),
    )
    print(
        f"purged {report.purged} photo(s), removed {report.blobs_removed} blob(s); "
        f"skipped {report.skipped}, failed {report.failed}"
    )
    if report.failed:
        raise InstastoreError(
            f"{report.failed} photo(s) could not be purged; run `instastore purge` again"
        )


def _gc(args: argparse.Namespace) -> None:
    from instastore.lifecycle.gc import gc
    from instastore.limits import ORPHAN_GRACE

    report = _with_stores(
        args, lambda stores, settings, _: gc(stores.photos, stores.blobs, settings, progress=print)
    )
    print(
        f"checked {report.checked} blob(s): removed {report.removed} "
        f"orphan(s), left {report.young} younger than {ORPHAN_GRACE}; "
        f"removed {report.scratch_removed} abandoned temporary file(s) "
        f"and {report.folders_removed} empty folder(s); {report.volumes} volume(s) in use hold "
        f"{report.dead_bytes:,} dead byte(s) of {report.volume_bytes:,} "
        f"({report.sparse} at least half dead: `instastore compact` reclaims them); "
        f"left {report.pending} blob(s) of unfinished packing or compaction"
    )


def _fanout(args: argparse.Namespace) -> None:
    from instastore.fanout import Fanout

    async def run(stores: Stores, settings: Settings, _: IdGenerator) -> str:
        fanout = Fanout(stores.inbox, stores.graph, stores.photos, settings)
        fanout.progress = print
        if args.owner is not None:
            rows = await fanout.fan_out(args.owner)
            return f"fanned out owner {args.owner}: {rows} inbox row(s) written"
        owners = 0
        while done := await fanout.sweep(after_s=0):
            owners += done
        return f"fanned out {owners} owner(s); the queue is empty"

    print(_with_stores(args, run))


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value


def _pack(args: argparse.Namespace) -> None:
    from datetime import timedelta

    from instastore.lifecycle.packing import pack

    min_age = timedelta(seconds=args.min_age)
    report = _with_stores(
        args,
        lambda stores, settings, ids: pack(
            stores.photos,
            stores.blobs,
            settings,
            min_age,
            progress=print,
            scan_all=args.scan_all,
            landed_grace_s=args.landed_grace,
            generator=ids,
        ),
    )
    queued = f"queued {report.queued} photo(s) by a full scan; " if args.scan_all else ""
    print(
        f"{queued}switched {report.photos} photo(s) to {report.needles} needle(s) in "
        f"{report.volumes} new volume(s) ({report.bytes:,} bytes); removed "
        f"{report.landed_removed} landed blob(s); finished {report.resumed} earlier run(s), "
        f"removed {report.dead_volumes_removed} dead volume(s); {report.skipped} photo(s) changed "
        "meanwhile and stay as they are"
    )


def _storage_stats(args: argparse.Namespace) -> None:
    import json

    from instastore.lifecycle.stats import StorageStats, collect
    from instastore.storage.hdfs import HdfsBlobStore

    async def job(stores: Stores, settings: Settings, _: IdGenerator) -> StorageStats:
        stats = await collect(stores.photos, stores.blobs)
        if isinstance(stores.blobs, HdfsBlobStore):
            stats.attach_cluster(await stores.blobs.cluster_stats())
        return stats

    stats = _with_stores(args, job)
    print(json.dumps(stats.as_dict(), indent=2) if args.json else "\n".join(stats.describe()))


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a share from 0 to 1, not {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share from 0 to 1, not {text}")
    return value


def _compact(args: argparse.Namespace) -> None:
    from instastore.lifecycle.compaction import compact

    report = _with_stores(
        args,
        lambda stores, settings, ids: compact(
            stores.photos,
            stores.blobs,
            settings,
            args.threshold,
            progress=print,
            landed_grace_s=args.landed_grace,
            generator=ids,
        ),
    )
    moved = report.moved
    print(
        f"compacted {report.compacted} of {report.volumes} volume(s) into {moved.volumes} new "
        f"volume(s) ({moved.needles} live needle(s), {moved.bytes:,} bytes); removed "
        f"{moved.landed_removed} emptied old blob(s) and {report.dead_volumes_removed} volume(s) "
        f"no record pointed into; finished {moved.resumed} earlier run(s); "
        f"{report.kept_for_deleted} sparse volume(s) stay for deleted photos"
    )
