"""Adapter boundaries: WebHDFS and driver failures leave instastore/storage/ as
instastore's own errors, never as aiohttp, WebHDFS or cassandra-driver exceptions."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from instastore.errors import Conflict, NotFound, Unavailable
from instastore.storage.cassandra import CassandraMetadataStore
from instastore.storage.hdfs import HdfsBlobStore
from instastore.storage.hdfs.webhdfs import WebHdfs

from ..serving import free_port


async def chunks(data: bytes):
    yield data


@pytest.fixture
async def webhdfs(local_cluster):
    client = WebHdfs(local_cluster.webhdfs_url, "instastore")
    yield client
    await client.close()


@pytest.mark.hdfs
async def test_webhdfs_remote_exceptions_are_mapped(webhdfs):
    folder = f"/errors-{uuid.uuid4().hex}"
    with pytest.raises(NotFound, match="FileNotFoundException"):
        await webhdfs.get_file_status(folder + "/missing")
    with pytest.raises(NotFound):
        _ = [c async for c in webhdfs.open(folder + "/missing")]
    assert await webhdfs.create(folder + "/f", chunks(b"one")) == 3
    with pytest.raises(Conflict, match="FileAlreadyExistsException"):
        await webhdfs.create(folder + "/f", chunks(b"two"))
    assert [e["pathSuffix"] for e in await webhdfs.list_status(folder)] == ["f"]
    assert await webhdfs.delete(folder + "/nothing-here") is False
    assert await webhdfs.delete(folder, recursive=True) is True


@pytest.mark.hdfs
async def test_safe_mode_is_unavailable_not_an_http_error(local_cluster, webhdfs):
    path = f"/safemode-{uuid.uuid4().hex}"
    entered = local_cluster.hdfs_tool("dfsadmin", ["-safemode", "enter"])
    assert entered.returncode == 0, entered.stderr
    try:
        with pytest.raises(Unavailable, match="SafeModeException"):
            await webhdfs.create(path, chunks(b"x"))
    finally:
        left = local_cluster.hdfs_tool("dfsadmin", ["-safemode", "leave"])
        assert left.returncode == 0, left.stderr
    assert await webhdfs.create(path, chunks(b"x")) == 1
    await webhdfs.delete(path)


async def test_nothing_listening_is_unavailable_for_webhdfs(embedded_settings):
    settings = dataclasses.replace(
        embedded_settings, webhdfs_url=f"http://127.0.0.1:{free_port()}", cassandra_hosts="x"
    )
    store = await HdfsBlobStore.connect(settings)
    try:
        with pytest.raises(Unavailable, match="WebHDFS"):
            await store.ping()
        with pytest.raises(Unavailable):
            await store.put("a/b", chunks(b"x"))
    finally:
        await store.close()


async def test_nothing_listening_is_unavailable_for_cassandra(embedded_settings):
    settings = dataclasses.replace(
        embedded_settings,
        cassandra_hosts="127.0.0.1",
        cassandra_port=free_port(),
        webhdfs_url="http://x",
    )
    with pytest.raises(Unavailable, match="Cassandra"):
        await CassandraMetadataStore.connect(settings)


@pytest.mark.cassandra
async def test_a_missing_schema_says_to_migrate(cluster_settings):
    settings = dataclasses.replace(
        cluster_settings, cassandra_keyspace=f"never_{uuid.uuid4().hex[:8]}"
    )
    with pytest.raises(Unavailable, match="run `instastore migrate`"):
        await CassandraMetadataStore.connect(settings)


@pytest.mark.cassandra
def test_the_applied_schema_is_read_from_cassandra_not_from_the_drivers_metadata(
    cluster_settings,
):
    """A driver that connected while the nodes' schema versions disagreed has no schema
    metadata (it skips loading it); the migrations applied are found all the same."""
    from instastore.schema import migrations

    from instastore.storage.cassandra import migrate
    from instastore.storage.cassandra.session import build_cluster

    driver = build_cluster(cluster_settings)
    driver.schema_metadata_enabled = False  # as after a load skipped for disagreement
    try:
        session = driver.connect()
        assert cluster_settings.cassandra_keyspace not in driver.metadata.keyspaces
        assert migrate.pending(session, cluster_settings) == []
        never = dataclasses.replace(
            cluster_settings, cassandra_keyspace=f"never_{uuid.uuid4().hex[:8]}"
        )
        every = [f"{m.version:03d}_{m.name}" for m in migrations("cql")]
        assert migrate.pending(session, never) == every
    finally:
        driver.shutdown()


def test_a_timed_out_write_is_outcome_unknown_and_a_read_stays_unavailable():
    from cassandra import ConsistencyLevel, OperationTimedOut, ReadTimeout, WriteTimeout, WriteType
    from cassandra import Unavailable as DriverUnavailable
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException

    from instastore.errors import OutcomeUnknown
    from instastore.storage.cassandra.session import translate_errors

    def raised(exc: Exception, write: bool) -> type:
        with pytest.raises(Unavailable) as caught, translate_errors("test", write=write):
            raise exc
        return type(caught.value)

    batch_log = WriteTimeout(
        "timed out",
        consistency=ConsistencyLevel.QUORUM,
        required_responses=2,
        received_responses=1,
        write_type=WriteType.BATCH_LOG,
    )
    for maybe_written in (
        batch_log,
        OperationTimedOut("client gave up"),
        ConnectionException("reset"),
        NoHostAvailable("all failed", {"127.0.0.1": OperationTimedOut("t")}),
    ):
        assert raised(maybe_written, write=True) is OutcomeUnknown, maybe_written
    refused = DriverUnavailable(
        "too few replicas",
        consistency=ConsistencyLevel.QUORUM,
        required_replicas=2,
        alive_replicas=1,
    )
    never_sent = NoHostAvailable("none", {"127.0.0.1": ConnectionException("Pool is shutdown")})
    for not_written in (refused, never_sent):
        assert raised(not_written, write=True) is Unavailable, not_written
    read_timeout = ReadTimeout(
        "t",
        consistency=ConsistencyLevel.QUORUM,
        required_responses=2,
        received_responses=1,
        data_retrieved=False,
    )
    for read_failure in (read_timeout, OperationTimedOut("client gave up")):
        assert raised(read_failure, write=False) is Unavailable


@pytest.mark.cassandra
async def test_a_real_write_that_times_out_is_outcome_unknown(cluster_settings):
    """A real write against the test cluster whose client-side timeout expires: it may
    well have been applied, so it is OutcomeUnknown; the same timeout on a read is not."""
    import asyncio

    from instastore.errors import OutcomeUnknown
    from instastore.storage.cassandra.session import build_cluster, execute

    driver = build_cluster(cluster_settings)
    session = await asyncio.to_thread(driver.connect, cluster_settings.cassandra_keyspace)
    try:
        insert = await asyncio.to_thread(
            session.prepare, "INSERT INTO sessions (token_hash, user_id) VALUES (?, ?)"
        )
        select = await asyncio.to_thread(
            session.prepare, "SELECT user_id FROM sessions WHERE token_hash = ?"
        )
        token = uuid.uuid4().hex
        for profile in driver.profile_manager.profiles.values():  # reads' and writes'
            profile.request_timeout = 1e-6
        with pytest.raises(OutcomeUnknown):
            await execute(session, insert, (token, 1), what="a write")
        with pytest.raises(Unavailable) as read:
            await execute(session, select, (token,), what="a read")
        assert type(read.value) is Unavailable
    finally:
        await asyncio.to_thread(driver.shutdown)


@pytest.mark.cassandra
async def test_writes_that_time_out_are_tried_again_and_counted_once(cluster_settings):
    """On the test cluster, the first try of each write below times out on the client
    (it may or may not have landed); the store tries it again rather than giving up or
    undoing, and the photo count moves exactly once."""
    import asyncio
    from datetime import UTC, datetime

    from instastore.storage.cassandra.session import WRITES

    from ..factories import make_photo, make_user

    store = await CassandraMetadataStore.connect(cluster_settings)
    profile = store.cluster.profile_manager.profiles[WRITES]  # the writes' bound
    normal = profile.request_timeout

    def time_out_for_a_moment() -> None:
        profile.request_timeout = 1e-6
        asyncio.get_running_loop().call_later(0.1, setattr, profile, "request_timeout", normal)

    try:
        owner = make_user(created_at=datetime.now(UTC))
        time_out_for_a_moment()
        await store.create_user(owner)  # its first write times out, then lands
        assert (await store.get_user_by_name(owner.username)).id == owner.id

        photo = make_photo(owner.id)
        await store.save_photo(photo, ["timeout"])
        assert (await store.count_photos(owner.id)).live == 1
        time_out_for_a_moment()
        await store.set_deleted(photo, datetime.now(UTC))  # its batch times out first
        assert (await store.get_photo(photo.id)).deleted
        assert (await store.count_photos(owner.id)).live == 0
    finally:
        profile.request_timeout = normal
        await store.close()
