"""The ``instastore`` command: ``serve`` and ``cluster``.

This is the entry point, so it is the one place that configures logging (``logs``).
Each module adds its own commands to the one parser, in the order ``--help`` lists them:

- ``serve``: ``serve`` and ``migrate``, the service itself;
- ``jobs``: ``purge``, ``gc``, ``pack``, ``compact`` and ``storage stats``, the jobs over
  the service's stores;
- ``transcode``: ``transcode``, the video transcode queue's worker and backfill;
- ``backup``: ``backup create|list|delete|restore``;
- ``moderation``: ``moderation list|hide|restore``, working through users' reports;
- ``cluster``: ``cluster ...``, the local Cassandra + HDFS cluster.
"""

from __future__ import annotations

import argparse
import sys

from instastore import __version__
from instastore.cli import backup, cluster, jobs, moderation, serve, transcode
from instastore.errors import ClusterError, ConfigError, InstastoreError


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
    for module in (serve, jobs, transcode, backup, moderation, cluster):
        module.add_commands(commands)
    return parser
