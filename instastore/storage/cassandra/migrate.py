"""``instastore migrate``: create the keyspace and apply the CQL files not yet applied.

The keyspace uses NetworkTopologyStrategy with the replication factor from the settings.
Each applied file is recorded in ``schema_migrations``; applying again is a no-op. Every
DDL statement waits for schema agreement through the driver (no sleep loops), and a
disagreement is an error rather than a guess.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

from cassandra.cluster import Session

from instastore.config import Settings
from instastore.errors import ConfigError, StorageError
from instastore.schema import migrations
from instastore.storage.cassandra.session import translate_errors

log = logging.getLogger(__name__)

SCHEMA_AGREEMENT_WAIT_S = 30
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,47}")  # used with fullmatch: "$" allows a final "\n"


def keyspace_cql(settings: Settings) -> str:
    keyspace = settings.cassandra_keyspace
    if not _IDENTIFIER.fullmatch(keyspace):
        raise ConfigError(
            f"cassandra_keyspace must be a lower-case CQL identifier, not {keyspace!r}"
        )
    dc = settings.cassandra_local_dc.replace("'", "")
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', '{dc}': {settings.replication_factor}}}"
    )


def _ddl(session: Session, statement: str) -> None:
    with translate_errors("schema change"):
        result = session.execute(statement, timeout=60)
    if not result.response_future.is_schema_agreed:
        agreed = session.cluster.control_connection.wait_for_schema_agreement(
            wait_time=SCHEMA_AGREEMENT_WAIT_S
        )
        if not agreed:
            raise StorageError(
                f"nodes did not agree on the schema within {SCHEMA_AGREEMENT_WAIT_S} s after: "
                f"{statement[:80]}"
            )


def migrate(
    session: Session, settings: Settings, progress: Callable[[str], object] = print
) -> list[str]:
    """Apply what is missing; return the names of the files applied now. Blocking: run
    it from the command line or in a worker thread."""
    keyspace = settings.cassandra_keyspace
    _ddl(session, keyspace_cql(settings))
    _ddl(
        session,
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations "
        "(version int PRIMARY KEY, name text, checksum text, applied_at timestamp)",
    )
    with translate_errors("reading schema_migrations"):
        rows = session.execute(f"SELECT version, name, checksum FROM {keyspace}.schema_migrations")
    applied = {row.version: row for row in rows}
    done = []
    session.set_keyspace(keyspace)
    for migration in migrations("cql"):
        checksum = hashlib.sha256(migration.text.encode()).hexdigest()
        if migration.version in applied:
            if applied[migration.version].checksum != checksum:
                log.warning(
                    "schema file %03d_%s changed after it was applied; released files must not be "
                    "edited",
                    migration.version,
                    migration.name,
                )
            continue
        progress(f"applying {migration.version:03d}_{migration.name}.cql to keyspace {keyspace}")
        for statement in migration.statements():
            _ddl(session, statement)
        with translate_errors("recording a migration"):
            session.execute(
                f"INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_at) "
                "VALUES (%s, %s, %s, %s)",
                (migration.version, migration.name, checksum, datetime.now(UTC)),
            )
        done.append(f"{migration.version:03d}_{migration.name}")
    return done


def pending(session: Session, settings: Settings) -> list[str]:
    """The migrations not applied yet (all of them if the keyspace does not exist)."""
    keyspace = settings.cassandra_keyspace
    every = [f"{m.version:03d}_{m.name}" for m in migrations("cql")]
    if (
        keyspace not in session.cluster.metadata.keyspaces
        or "schema_migrations" not in session.cluster.metadata.keyspaces[keyspace].tables
    ):
        return every
    with translate_errors("reading schema_migrations"):
        versions = {
            row.version
            for row in session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
        }
    return [name for name in every if int(name[:3]) not in versions]
