"""``instastore backup create|list|delete|restore``: Cassandra snapshots of the keyspace
and HDFS snapshots of the blob root of the local cluster, taken and restored together."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from instastore import config
from instastore.cli import logs
from instastore.cli.cluster import local_cluster
from instastore.errors import ClusterError, InstastoreError


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _backups(args: argparse.Namespace) -> Any:
    """The backups of the cluster in ``--dir``, for the keyspace and blob root the settings
    name (by default those of that cluster, as `instastore cluster env` prints them)."""
    import os

    from instastore.cluster.backups import Backups

    logs.configure("WARNING")
    cluster = local_cluster(args)
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
