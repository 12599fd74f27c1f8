"""The ``instastore`` command: ``serve`` and ``cluster``.

This is the entry point, so it is the one place that configures logging.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from instastore import __version__, config
from instastore.errors import ClusterError, ConfigError, InstastoreError
from instastore.limits import LANDED_GRACE_S

if TYPE_CHECKING:  # imported where a command needs them, so `instastore --help` stays quick
    import subprocess

    from instastore.cluster import LocalCluster
    from instastore.config import Settings
    from instastore.ids import IdGenerator
    from instastore.storage.ports import Stores

_T = TypeVar("_T")

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except ClusterError as exc:
        print(f"instastore: {exc}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return 1
    except (ConfigError, InstastoreError) as exc:
        print(f"instastore: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instastore", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"instastore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # The commands that act on the service's stores take every setting as a flag.
    for name, help_text, run in (
        ("serve", "run the HTTP service", _serve),
        ("migrate", "create the keyspace and apply the CQL schema files not yet applied", _migrate),
        ("purge", "remove for good the photos deleted more than retention_days ago", _purge),
        ("gc", "remove blobs no photo record points at, and leftovers of crashed writes", _gc),
        ("pack", "pack the landed blobs of photos older than --min-age into volumes", _pack),
        (
            "compact",
            "rewrite volumes whose dead share passes --threshold, live needles only",
            _compact,
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

    backup = commands.add_parser(
        "backup",
        help="Cassandra snapshots of the keyspace and HDFS snapshots of the blob root, together",
    )
    backup.add_argument(
        "--dir", type=Path, default=None, help="cluster folder (as for `instastore cluster`)"
    )
    backup_actions = backup.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = backup_actions.add_parser("create", help="take a backup (the service keeps running)")
    create.add_argument("--name", default=None, help="its name (default: backup-<UTC time>)")
    create.set_defaults(run=_backup_create)
    backup_actions.add_parser("list", help="every backup, and whether it is complete").set_defaults(
        run=_backup_list
    )
    delete = backup_actions.add_parser("delete", help="remove a backup's snapshots")
    delete.add_argument("name")
    delete.set_defaults(run=_backup_delete)
    restore = backup_actions.add_parser(
        "restore",
        help="bring the keyspace and the blob root back to a backup (stop the service first)",
    )
    restore.add_argument("name")
    restore.add_argument(
        "--yes", action="store_true", help="really: what was written since the backup is lost"
    )
    restore.set_defaults(run=_backup_restore)
    for parser_ in (create, delete, restore, backup_actions.choices["list"]):
        config.add_arguments(parser_)

    cluster = commands.add_parser(
        "cluster", help="a local Cassandra + HDFS cluster for development and tests"
    )
    cluster.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=(
            "cluster folder (default: $INSTASTORE_CLUSTER_DIR or ~/.local/state/instastore/cluster)"
        ),
    )
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="start the cluster and wait until it is ready")
    up.add_argument("--cassandra-nodes", type=int, default=1, metavar="N")
    up.add_argument("--datanodes", type=int, default=1, metavar="M")
    up.add_argument(
        "--first-address",
        default="127.0.0.1",
        help="address of Cassandra node 1; node i takes the next ones",
    )
    up.add_argument(
        "--port-offset",
        type=int,
        default=0,
        help="added to every port, to run a second cluster beside the first",
    )
    up.add_argument(
        "--cassandra-heap", default="1g", help="heap of each Cassandra node (-Xms and -Xmx)"
    )
    up.add_argument("--hdfs-heap", default="256m", help="maximum heap of each HDFS daemon")
    up.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for readiness")
    up.set_defaults(run=_cluster_up)

    actions.add_parser("status", help="show each node, its pid, memory and endpoint").set_defaults(
        run=_cluster_status
    )
    actions.add_parser(
        "env", help="print the INSTASTORE_* settings that point the service at this cluster"
    ).set_defaults(run=_cluster_env)

    down = actions.add_parser(
        "down", help="stop every node (SIGTERM, then SIGKILL after a timeout)"
    )
    down.add_argument("--wipe", action="store_true", help="also delete the cluster's data and logs")
    down.set_defaults(run=_cluster_down)

    tool = actions.add_parser("nodetool", help="run Cassandra's nodetool against a node")
    tool.add_argument(
        "--node", default=None, help="Cassandra node name (default: the first running one)"
    )
    tool.add_argument("args", nargs=argparse.REMAINDER, help="nodetool arguments, e.g. status")
    tool.set_defaults(run=_cluster_nodetool)

    hdfs_tool = actions.add_parser(
        "hdfs", help="run Hadoop's own tools: dfs, dfsadmin, fsck or ec (e.g. hdfs dfs -ls /)"
    )
    hdfs_tool.add_argument("tool", choices=["dfs", "dfsadmin", "fsck", "ec"])
    hdfs_tool.add_argument("args", nargs=argparse.REMAINDER)
    hdfs_tool.set_defaults(run=_cluster_hdfs)

    logs = actions.add_parser("logs", help="print the tail of a node's log (or every node's)")
    logs.add_argument("node", nargs="?", help="node name, e.g. cassandra1, namenode, datanode2")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("--path", action="store_true", help="print the log files' paths only")
    logs.set_defaults(run=_cluster_logs)

    kill = actions.add_parser("kill", help="SIGKILL one node, as a crash would")
    kill.add_argument("node")
    kill.set_defaults(run=_cluster_kill)

    start = actions.add_parser("start", help="start one stopped node again and wait for readiness")
    start.add_argument("node")
    start.set_defaults(run=_cluster_start)

    add = actions.add_parser(
        "add",
        help="join one more node to the running cluster: a Cassandra node bootstraps (then "
        "cleanup runs on the others), a DataNode registers (then the balancer runs)",
    )
    add.add_argument("kind", choices=["cassandra", "datanode"])
    add.set_defaults(run=_cluster_add)
    remove = actions.add_parser(
        "remove",
        help="take a node out with its data moved first (nodetool decommission; DataNode "
        "decommissioning); refused below the replication factor",
    )
    remove.add_argument("node")
    remove.set_defaults(run=_cluster_remove)
    replace = actions.add_parser(
        "replace", help="replace a dead Cassandra node by a new one that takes its ranges"
    )
    replace.add_argument("node")
    replace.set_defaults(run=_cluster_replace)
    actions.add_parser(
        "repair", help="nodetool repair -pr -full on every Cassandra node, one after the other"
    ).set_defaults(run=_cluster_repair)
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _serve(args: argparse.Namespace) -> None:
    settings = config.settings_from_args(args)
    _configure_logging(settings.log_level)
    from instastore.server.app import run

    run(settings)


def _migrate(args: argparse.Namespace) -> None:
    settings = config.settings_from_args(args)
    _configure_logging("WARNING")
    if not settings.uses_cluster:
        print("the embedded store applies its schema by itself on start; nothing to do")
        return
    from instastore.storage.cassandra.migrate import migrate
    from instastore.storage.cassandra.session import build_cluster, translate_errors

    cluster = build_cluster(settings)
    try:
        with translate_errors("connect"):
            session = cluster.connect()
        applied = migrate(session, settings)
    finally:
        cluster.shutdown()
    print(
        f"applied {len(applied)} schema file(s)"
        if applied
        else f"keyspace {settings.cassandra_keyspace} is up to date"
    )


# A storage job's command -> what in its report counts as its items done (its progress).
JOB_ITEMS: dict[str, Callable[[Any], int]] = {
    "purge": lambda report: report.purged,
    "gc": lambda report: report.removed,
    "pack": lambda report: report.photos,
    "compact": lambda report: report.compacted,
}


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
    _configure_logging(settings.log_level)
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


def _backups(args: argparse.Namespace) -> Any:
    """The backups of the cluster in ``--dir``, for the keyspace and blob root the settings
    name (by default those of that cluster, as `instastore cluster env` prints them)."""
    import os

    from instastore.cluster.backups import Backups

    _configure_logging("WARNING")
    cluster = _cluster(args)
    if not cluster.daemons():
        raise ClusterError(f"no cluster in {cluster.root}; run `instastore cluster up`")
    settings = config.settings_from_args(args, {**cluster.client_settings(), **os.environ})
    return Backups(cluster, settings)


def _backup_create(args: argparse.Namespace) -> None:
    import asyncio

    backups = _backups(args)
    backup = asyncio.run(backups.create(args.name, progress=print))
    print(f"backup {backup.name} taken")


def _backup_list(args: argparse.Namespace) -> None:
    import asyncio

    backups = _backups(args)
    nodes = [n.name for n in backups.cluster.cassandra_nodes]
    found = asyncio.run(backups.list())
    if not found:
        print("no backups")
    for backup in found:
        created = backup.created.isoformat(timespec="seconds") if backup.created else "-"
        gaps = backup.missing(nodes)
        state = "complete" if not gaps else "incomplete (no " + ", no ".join(gaps) + ")"
        print(f"{backup.name:<28} {created:<26} {state}")


def _backup_delete(args: argparse.Namespace) -> None:
    import asyncio

    asyncio.run(_backups(args).delete(args.name, progress=print))
    print(f"backup {args.name} removed")


def _backup_restore(args: argparse.Namespace) -> None:
    import asyncio

    if not args.yes:
        raise InstastoreError(
            "restore replaces the keyspace and the blob root with the backup: what was written "
            "since is lost; stop the service, then run it again with --yes"
        )
    report = asyncio.run(_backups(args).restore(args.name, progress=print))
    print(
        f"restored {args.name}: {report.tables} table folder(s), {report.copied} blob(s) copied "
        f"back ({report.repaired} that were not the backup's), {report.removed} newer blob(s) "
        f"and {report.unfinished} unfinished copies removed; {report.photos} photo record(s) "
        f"checked"
    )
    if report.damaged:
        raise InstastoreError(
            f"{len(report.damaged)} file(s) of the blob root are not the backup's (run the "
            f"restore again): " + "; ".join(report.damaged[:10])
        )
    if report.missing:
        raise InstastoreError(
            f"{len(report.missing)} locator(s) name no blob: " + "; ".join(report.missing[:10])
        )


def _cluster(args: argparse.Namespace) -> LocalCluster:
    from instastore.cluster import LocalCluster, default_cluster_dir

    return LocalCluster(args.dir or default_cluster_dir())


def _cluster_up(args: argparse.Namespace) -> None:
    from instastore.cluster import ClusterSpec

    _configure_logging("WARNING")
    cluster = _cluster(args)
    spec = ClusterSpec(
        cassandra_nodes=args.cassandra_nodes,
        datanodes=args.datanodes,
        first_address=args.first_address,
        port_offset=args.port_offset,
        cassandra_heap=args.cassandra_heap,
        hdfs_heap=args.hdfs_heap,
    )
    print(
        f"starting {spec.cassandra_nodes} Cassandra node(s) and {spec.datanodes} DataNode(s) in "
        f"{cluster.root} ...",
        flush=True,
    )
    started = cluster.up(spec, timeout=args.timeout)
    print("ready" if started else "already running", flush=True)
    _print_status(cluster)


def _print_status(cluster: LocalCluster) -> None:
    rows = cluster.status()
    if not rows:
        print(f"no cluster in {cluster.root}")
        return
    for r in rows:
        rss = f"{r['rss_mb']} MB" if r["rss_mb"] is not None else "-"
        print(
            f"{r['name']:<11} {r['state']:<8} pid {r['pid'] or '-'!s:<8} rss {rss:<8} "
            f"{r['endpoint']}"
        )


def _cluster_status(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    _print_status(cluster)
    return 0 if cluster.daemons() and len(cluster.running()) == len(cluster.daemons()) else 3


def _cluster_env(args: argparse.Namespace) -> None:
    cluster = _cluster(args)
    if not cluster.daemons():
        raise ClusterError(f"no cluster in {cluster.root}; run `instastore cluster up`")
    for key, value in cluster.client_settings().items():
        print(f"export {key}={value}")


def _cluster_down(args: argparse.Namespace) -> None:
    cluster = _cluster(args)
    killed = cluster.down(wipe=args.wipe)
    note = f" ({len(killed)} needed SIGKILL)" if killed else ""
    print(f"stopped{note}" + (f"; removed {cluster.root}" if args.wipe else ""))


def _passthrough(done: subprocess.CompletedProcess[Any]) -> int:
    """Hand a Java tool's output (text or bytes) and exit code on as they are."""
    for stream, output in ((sys.stdout, done.stdout), (sys.stderr, done.stderr)):
        if isinstance(output, bytes):
            stream.flush()
            stream.buffer.write(output)
            stream.buffer.flush()
        else:
            stream.write(output)
    return done.returncode


def _progress(line: str) -> None:
    print(line, flush=True)


def _cluster_add(args: argparse.Namespace) -> None:
    from instastore.cluster import operations

    _configure_logging("WARNING")
    cluster = _cluster(args)
    add = operations.add_cassandra if args.kind == "cassandra" else operations.add_datanode
    node = add(cluster, progress=_progress)
    print(f"{node.name} joined")
    _print_status(cluster)


def _cluster_remove(args: argparse.Namespace) -> None:
    from instastore.cluster import operations

    _configure_logging("WARNING")
    cluster = _cluster(args)
    operations.remove(cluster, args.node, progress=_progress)
    print(f"{args.node} removed")
    _print_status(cluster)


def _cluster_replace(args: argparse.Namespace) -> None:
    from instastore.cluster import operations

    _configure_logging("WARNING")
    cluster = _cluster(args)
    node = operations.replace(cluster, args.node, progress=_progress)
    print(f"{args.node} replaced by {node.name}")
    _print_status(cluster)


def _cluster_repair(args: argparse.Namespace) -> None:
    from instastore.cluster import operations

    _configure_logging("WARNING")
    operations.repair(_cluster(args), progress=_progress)
    print("repaired")


def _cluster_nodetool(args: argparse.Namespace) -> int:
    return _passthrough(_cluster(args).nodetool(args.args, node=args.node))


def _cluster_hdfs(args: argparse.Namespace) -> int:
    return _passthrough(
        _cluster(args).hdfs_tool(args.tool, args.args, binary=True)
    )  # -cat of a JPEG


def _cluster_logs(args: argparse.Namespace) -> None:
    from instastore.cluster.processes import tail

    cluster = _cluster(args)
    daemons = [cluster.node(args.node)] if args.node else cluster.daemons()
    for daemon in daemons:
        for path in daemon.logs:
            if args.path:
                print(path)
            else:
                print(f"==> {daemon.name}: {path} <==")
                print(tail(path, args.lines))


def _cluster_kill(args: argparse.Namespace) -> None:
    _cluster(args).kill_node(args.node)
    print(f"killed {args.node}")


def _cluster_start(args: argparse.Namespace) -> None:
    _cluster(args).start_node(args.node)
    print(f"started {args.node}; cluster ready")


if __name__ == "__main__":
    sys.exit(main())
