"""``instastore serve`` (the HTTP service) and ``instastore migrate`` (its CQL schema)."""

from __future__ import annotations

import argparse

from instastore import config
from instastore.cli import logs


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # The commands that act on the service's stores take every setting as a flag.
    for name, help_text, run in (
        ("serve", "run the HTTP service", _serve),
        ("migrate", "create the keyspace and apply the CQL schema files not yet applied", _migrate),
    ):
        command = commands.add_parser(name, help=help_text)
        config.add_arguments(command)
        command.set_defaults(run=run)


def _serve(args: argparse.Namespace) -> None:
    settings = config.settings_from_args(args)
    logs.configure(settings.log_level)
    from instastore.server.app import run

    run(settings)


def _migrate(args: argparse.Namespace) -> None:
    settings = config.settings_from_args(args)
    logs.configure("WARNING")
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
