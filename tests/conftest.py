"""Fixtures and hooks shared by every test.

The tests sit in tiers by what they need (tests/README.md: the layout, and the command
of each tier). Every test that needs a running cluster is marked ``cluster``: the hook
below marks each test that uses the ``local_cluster`` fixture, directly or through
another (``cluster_settings``, ``cluster3``, ...), and the "cluster" case of each
parametrized adapter fixture is a ``pytest.param`` marked so. ``-m "not cluster"`` (``make
test-fast``) therefore selects every test that needs no cluster, and skips none.

Tests that need Cassandra or HDFS use the local cluster that ``make test`` (and so CI)
brings up with ``instastore cluster up``. When it is not running they fail under CI
(``CI=true``) or ``INSTASTORE_REQUIRE_CLUSTER=1``, and skip with a reason otherwise, so
a newcomer can run the embedded tests alone with a plain ``pytest`` (tests/required.py).
What the tests make (ids, photo records, users, uploads) is in tests/factories.py.

Each tier has a timeout of its own (``TIER_TIMEOUTS``) for its tests that need no cluster:
a test's own ``timeout`` marker wins over it, ``--timeout`` (or ``PYTEST_TIMEOUT``) sets
one for every test without a marker instead, and the tests that need a cluster keep
pyproject.toml's 300 s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import os
import signal
import uuid
from pathlib import Path

import hypothesis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from instastore.cluster import ClusterSpec, LocalCluster, default_cluster_dir
from instastore.config import Settings

# The two hooks make every skip a failure under CI (tests/required.py).
from .required import missing, pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401
from .serving import TEST_COSTS
from .watchdog import Watchdog

# Property tests: no per-example deadline (a loaded 2-core machine is not a failure), and
# under CI a fixed seed, so a run is repeatable; locally each run explores new examples.
hypothesis.settings.register_profile("default", deadline=None)
hypothesis.settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
hypothesis.settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "default")


@pytest.fixture(scope="session", autouse=True)
def one_cassandra_driver_per_store():
    """Every test that opens the Cassandra adapter (each HTTP test's app, each contract
    test's stores) reuses one connected driver per store and driver settings for the
    whole session, instead of connecting, reading the schema and preparing every
    statement again (about a second a test under CI's load) and shutting it down after.
    Each test still gets an adapter object of its own, with its own settings; what is
    shared is the real driver's session and prepared statements, shut down at the end.
    ``instastore`` commands and servers run as processes of their own connect as ever."""
    from instastore.storage.cassandra.metadata import CassandraMetadataStore

    connect, drivers = CassandraMetadataStore.connect, {}

    async def shared(cls, settings: Settings) -> CassandraMetadataStore:
        key = (
            tuple(settings.cassandra_contact_points),
            settings.cassandra_port,
            settings.cassandra_keyspace,
            settings.cassandra_username,
            settings.cassandra_local_dc,
            settings.consistency,
            settings.cassandra_request_timeout,
            settings.cassandra_speculative_delay,
        )
        found = drivers.get(key)
        if found is not None and not _connected(found.session):
            # A node restarted under it (a restore drill stops the nodes) and the driver
            # has not reached it again yet: a fresh one connects as a test's own would.
            await asyncio.to_thread(found.cluster.shutdown)
            found = None
        if found is None:
            found = drivers[key] = await connect(settings)
        return cls(found.cluster, found.session, settings, found.q)

    async def kept(self) -> None:
        """Closed at the end of the session, not by each test."""

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CassandraMetadataStore, "connect", classmethod(shared))
        patch.setattr(CassandraMetadataStore, "close", kept)
        yield
    for store in drivers.values():
        store.cluster.shutdown()


def _connected(session) -> bool:
    """Whether the driver holds an open connection to some node now."""
    if session.is_shutdown:
        return False
    return any(
        state.get("open_count", 0) > 0 and not state.get("shutdown")
        for state in session.get_pool_state().values()
    )


@pytest.fixture(scope="session")
def local_cluster() -> LocalCluster:
    """The running local cluster (``make test`` starts it)."""
    cluster = LocalCluster(default_cluster_dir())
    daemons = cluster.daemons()
    if not daemons or len(cluster.running()) != len(daemons):
        missing(
            f"no running local cluster in {cluster.root}; start one with `instastore cluster up`"
        )
    return cluster


@pytest.fixture(scope="session")
def cluster_settings(local_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory):
    """Settings that point the service at the local cluster, in a keyspace of this test
    session (migrated here, dropped at the end)."""
    from instastore.storage.cassandra.migrate import migrate
    from instastore.storage.cassandra.session import build_cluster

    settings = Settings.from_sources(
        environ=local_cluster.client_settings(),
        overrides={
            "data_dir": tmp_path_factory.mktemp("cluster-data"),
            "cassandra_keyspace": f"test_{uuid.uuid4().hex[:8]}",
            **TEST_COSTS,
        },
    )
    driver = build_cluster(settings)
    session = driver.connect()
    migrate(session, settings, progress=lambda line: None)
    yield settings
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    driver.shutdown()


# The one 3 + 3 cluster of a test run (other addresses and ports than the 1 + 1 cluster).
CLUSTER3_SPEC = ClusterSpec(
    cassandra_nodes=3,
    datanodes=3,
    first_address="127.0.0.11",
    port_offset=1000,
    cassandra_heap="512m",
)


@pytest.fixture(scope="session")
def cluster3(tmp_path_factory, local_cluster) -> LocalCluster:
    """A 3 Cassandra + 3 DataNode cluster, started once per test run and shared by every
    test that needs one (they may kill and restart its nodes, and leave it whole)."""
    # local_cluster: only run where the test cluster (and so Java, Maven, jars) is set up.
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster3x3"))
    cluster.up(CLUSTER3_SPEC)
    yield cluster
    cluster.down(wipe=False)
    assert not cluster.running(), "a JVM outlived `down`"


@pytest.fixture(scope="session")
def cluster3_keyspace(cluster3) -> str:
    """One keyspace at replication factor 3 on the 3 + 3 cluster, migrated once per run
    (a migration there takes half a minute) for the tests that serve on it."""
    from .serving import replicated_keyspace

    # A test before may have left a node restarting (started without waiting): the
    # migration's tables would reach it only by its peers' gossip, after it is up.
    cluster3.wait_ready()
    return replicated_keyspace(cluster3, "replicated")


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", **TEST_COSTS)


@pytest.fixture(scope="session")
def contract_cluster_settings(cluster_settings: Settings):
    """The session's migrated keyspace, and an HDFS folder of its own (removed after): the
    cluster adapters of the contract suite and of the HTTP tests."""
    from .factories import remove_hdfs_root

    settings = dataclasses.replace(cluster_settings, hdfs_root=f"/contract-{uuid.uuid4().hex[:8]}")
    yield settings
    remove_hdfs_root(settings)


@pytest.fixture(params=["embedded", pytest.param("cluster", marks=pytest.mark.cluster)])
def adapter_settings(request, tmp_path) -> Settings:
    """Settings of each adapter in turn: embedded (SQLite + local files), cluster."""
    if request.param == "embedded":
        return Settings(data_dir=tmp_path / "data", **TEST_COSTS)
    return request.getfixturevalue("contract_cluster_settings")


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    """A SIGTERM stops the run as Ctrl-C does: the fixtures' teardown still stops the
    servers and clusters they started (scripts/test sends one to its second pytest when
    it is interrupted; a background process cannot be sent Ctrl-C)."""
    signal.signal(signal.SIGTERM, _interrupted)


TESTS = Path(__file__).resolve().parent

# Seconds a test of each tier (its folder under tests/) may take, setup and teardown
# included, unless it carries a timeout of its own or needs a cluster (those, and the
# kill tests of tests/faults, keep pyproject.toml's 300 s: a session keyspace's
# migration, nodes killed and restarted). Three times the slowest one's time or more on
# these 2 cores at a load average of 9 to 12 (unit: 14 s, a 49-megapixel decode; the
# others: 44 s, the OpenAPI fuzzer): a test that hangs fails in this time, not in 300 s.
TIER_TIMEOUTS = {"unit": 60, "contract": 120, "api": 120, "commands": 120, "cluster": 120}


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses the running cluster ``cluster`` and give each test its
    tier's timeout (the module docstring); put the event-loop watchdog on every async
    test (sync tests, such as the browser tests whose driver runs a loop of its own, do
    without), mark the tests that share the 3 + 3 cluster ``three_plus_three``
    (scripts/test runs them, with the ``own_cluster`` ones, in a pytest of their own
    beside the others), and run them last (the ones that add, remove or replace its nodes
    after every other)."""
    timeouts_given = config.getoption("timeout") is not None or "PYTEST_TIMEOUT" in os.environ
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.fixturenames.append("event_loop_watchdog")
        if "local_cluster" in fixtures:
            item.add_marker(pytest.mark.cluster)
        if "cluster3" in fixtures:
            item.add_marker(pytest.mark.three_plus_three)
        if (
            not timeouts_given
            and item.get_closest_marker("timeout") is None
            and item.get_closest_marker("cluster") is None
            and item.path.is_relative_to(TESTS)
        ):
            tier = item.path.relative_to(TESTS).parts[0]
            if tier in TIER_TIMEOUTS:
                item.add_marker(pytest.mark.timeout(TIER_TIMEOUTS[tier]))
    spread = "PYTEST_XDIST_WORKER" in os.environ
    items.sort(
        key=lambda item: (
            "cluster3" in getattr(item, "fixturenames", ()),
            item.get_closest_marker("reshapes_cluster") is not None,  # after all the others
            # On several processes (make test-fast) the kill tests first: they mostly wait
            # (kills at set moments), and the others fill the wait instead of trailing it.
            spread and item.path.parent != TESTS / "faults",
        )
    )


@pytest.fixture
async def event_loop_watchdog(monkeypatch):
    """Every async test runs with asyncio's debug mode on and fails if any callback held
    the loop too long (see tests/watchdog.py): a blocking call shows up
    as a failure here, not as a slow benchmark later."""
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = float("inf")  # timed by the watchdog instead
    watchdog = Watchdog()
    run = asyncio.Handle._run
    monkeypatch.setattr(asyncio.Handle, "_run", lambda handle: watchdog.run(handle, run))
    gc.callbacks.append(watchdog.gc_phase)
    watchdog.sample_stacks()
    yield
    watchdog.stop()
    gc.callbacks.remove(watchdog.gc_phase)
    monkeypatch.undo()
    assert not watchdog.seen, "blocking calls on the event loop:\n" + "\n".join(watchdog.seen)


class GuardedTestServer(TestServer):
    """aiohttp's test server, serving through the service's own runner (protocol guards,
    problem documents for aiohttp's own answers), as ``instastore serve`` does."""

    async def _make_runner(self, **kwargs):
        from instastore.server.app import make_runner

        return make_runner(self.app, **kwargs)


@pytest.fixture
async def aiohttp_client():
    """Start an application on a real local port, served as ``instastore serve`` serves
    it, and return a client for it; both are closed (and the app's cleanup_ctx run) at the
    end of the test."""
    clients: list[TestClient] = []

    async def make(app: web.Application) -> TestClient:
        client = TestClient(GuardedTestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
