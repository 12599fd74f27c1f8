"""Cassandra metadata store."""

from __future__ import annotations

import asyncio
import logging

from cassandra import ProtocolVersion
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from instastore.config import Settings
from instastore.storage.cassandra.session import execute, translate_errors

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 12.0  # above Cassandra's own 5 s read/write timeouts, so theirs fire first


def build_cluster(settings: Settings) -> Cluster:
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)),
        request_timeout=REQUEST_TIMEOUT_S,
    )
    auth = None
    if settings.cassandra_username:
        auth = PlainTextAuthProvider(settings.cassandra_username, settings.cassandra_password)
    return Cluster(
        contact_points=settings.cassandra_contact_points,
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=auth,
        connect_timeout=CONNECT_TIMEOUT_S,
        protocol_version=ProtocolVersion.V5,  # Cassandra 4.0+; skips two downgrade round trips
    )


class CassandraMetadataStore:
    name = "cassandra"

    def __init__(self, cluster: Cluster, session: Session, settings: Settings) -> None:
        self.cluster = cluster
        self.session = session
        self.settings = settings

    @classmethod
    async def connect(cls, settings: Settings) -> CassandraMetadataStore:
        cluster = build_cluster(settings)
        with translate_errors("connect"):
            # Connecting blocks on the network (contact points, topology): off the loop.
            session = await asyncio.to_thread(cluster.connect)
        return cls(cluster, session, settings)

    async def ping(self) -> None:
        await execute(self.session, "SELECT release_version FROM system.local", what="ping")

    async def close(self) -> None:
        await asyncio.to_thread(self.cluster.shutdown)
