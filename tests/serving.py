"""A real `instastore serve` process for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What every test's service runs with: argon2id at 1 pass over 1 MiB (about a millisecond)
# instead of the default 3 over 64 MiB (0.2-0.4 s of CPU here), and sign-ups unbounded from
# one address: the HTTP tests sign up and log in about a thousand users, all from
# 127.0.0.1 (and search without a token from it). The default cost is what
# test_login_throttle uses, where a hash made at one cost is shown to verify under another;
# the sign-up and search limits have tests of their own.
TEST_COSTS = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 1024,
    "signups_per_address": 1_000_000,
    "searches_per_address": 1_000_000,
    # Transcodes at the tests' own priority: niced, a 2-core machine running three pytests
    # and a cluster starved them past any wait.
    "transcode_nice": 0,
}
_TEST_COSTS_ENV = {f"INSTASTORE_{k.upper()}": str(v) for k, v in TEST_COSTS.items()}


def spawn(env: dict[str, str], log: Path, timeout: float = 60.0) -> tuple[subprocess.Popen, int]:
    """Start `instastore serve` with these INSTASTORE_* variables (on a free port unless
    one is given) and wait until it accepts connections: (the process, its port)."""
    env = {**_TEST_COSTS_ENV, **os.environ, **env}
    port = int(env.setdefault("INSTASTORE_PORT", str(free_port())))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "instastore", "serve"], env=env, stdout=out, stderr=out
        )
    host = env.get("INSTASTORE_HOST", "127.0.0.1")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(
                    f"instastore serve did not start:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.1)


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path, timeout: float = 60.0) -> Iterator[int]:
    """``spawn`` a server, yield its port, and stop it with SIGTERM, checking that it
    exits cleanly."""
    proc, port = spawn(env, log, timeout)
    try:
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, f"instastore serve exited with {code}:\n{log.read_text()[-3000:]}"


def replicated_keyspace(cluster, name: str) -> str:
    """A keyspace at replication factor 3 on a multi-node ``cluster``, migrated; its name."""
    from instastore.config import Settings
    from instastore.storage.cassandra.migrate import migrate
    from instastore.storage.cassandra.session import build_cluster

    keyspace = f"{name}_{uuid.uuid4().hex[:8]}"
    settings = Settings.from_sources(
        environ={
            **cluster.client_settings(),
            "INSTASTORE_CASSANDRA_KEYSPACE": keyspace,
            "INSTASTORE_REPLICATION_FACTOR": "3",
        }
    )
    driver = build_cluster(settings)
    try:
        migrate(driver.connect(), settings, progress=lambda line: None)
    finally:
        driver.shutdown()
    return keyspace


@contextlib.contextmanager
def serve_replicated(
    cluster, keyspace: str, data_dir: Path, name: str, extra: dict[str, str] | None = None
) -> Iterator[tuple[str, Any, Path]]:
    """``serve`` on a multi-node ``cluster`` as production runs: replication factor 3 in
    Cassandra and in HDFS, in ``keyspace`` (``replicated_keyspace``: shared by the tests
    of a run, each with users of its own) and a blob root of its own named after
    ``name``; no upload rate limit. Yields (base URL, its Settings, its log)."""
    from instastore.config import Settings

    env = {
        **cluster.client_settings(),
        "INSTASTORE_CASSANDRA_KEYSPACE": keyspace,
        "INSTASTORE_REPLICATION_FACTOR": "3",
        "INSTASTORE_HDFS_REPLICATION": "3",
        "INSTASTORE_HDFS_ROOT": f"/{name}-{uuid.uuid4().hex[:8]}",
        "INSTASTORE_DATA_DIR": str(data_dir),
        "INSTASTORE_UPLOADS_PER_MINUTE": "100000",
        **(extra or {}),
    }
    settings = Settings.from_sources(environ=env)
    log = data_dir / "serve.log"
    with serve(env, log) as port:
        yield f"http://127.0.0.1:{port}", settings, log
