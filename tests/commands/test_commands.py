"""`instastore migrate` and `instastore purge` as a user runs them."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from instastore.config import Settings
from instastore.storage.cassandra.session import build_cluster

from ..serving import serve

ROOT = Path(__file__).resolve().parents[2]


def instastore(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "instastore", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.cassandra
def test_migrate_applies_once_then_reports_up_to_date(local_cluster):
    env = {
        **local_cluster.client_settings(),
        "INSTASTORE_CASSANDRA_KEYSPACE": f"mig_{uuid.uuid4().hex[:8]}",
    }
    first = instastore("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "applying 001_initial.cql" in first.stdout
    second = instastore("migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert "is up to date" in second.stdout

    from instastore.schema import migrations

    driver = build_cluster(Settings.from_sources(env))
    session = driver.connect()
    try:
        keyspace = env["INSTASTORE_CASSANDRA_KEYSPACE"]
        strategy = session.cluster.metadata.keyspaces[keyspace].replication_strategy
        assert type(strategy).__name__ == "NetworkTopologyStrategy"
        applied = sorted(
            r.version for r in session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
        )
        assert applied == [m.version for m in migrations("cql")]
        session.execute(f"DROP KEYSPACE {keyspace}", timeout=120)  # schema agreement
    finally:
        driver.shutdown()


def test_migrate_on_the_embedded_default_says_there_is_nothing_to_do(tmp_path):
    done = instastore("migrate", "--data-dir", str(tmp_path))
    assert done.returncode == 0
    assert "nothing to do" in done.stdout


def test_purge_on_an_empty_store(tmp_path):
    done = instastore("purge", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("purged 0 photo(s), removed 0 blob(s); skipped 0, failed 0")


@pytest.mark.parametrize("command", [["pack", "--min-age", "0"], ["compact"], ["gc"], ["purge"]])
async def test_a_job_refuses_while_another_holds_the_job_lock(tmp_path, command):
    """Two storage jobs never run at once, on any host: a second one exits at once saying
    who holds the lock and since when, and runs once it is free."""
    from instastore import leases
    from instastore.storage import open_stores

    stores = await open_stores(Settings(data_dir=tmp_path))
    try:
        async with leases.job_lease(stores.leases, "instastore pack"):
            refused = await asyncio.to_thread(instastore, *command, "--data-dir", str(tmp_path))
        assert refused.returncode == 2, refused.stderr
        assert re.search(
            r"^instastore: the storage job lock is held by instastore pack on \S+ pid \d+ "
            r"#\S+ since 20\d\d-",
            refused.stderr,
        ), refused.stderr
        done = await asyncio.to_thread(instastore, *command, "--data-dir", str(tmp_path))
        assert done.returncode == 0, done.stderr
    finally:
        await stores.close()


async def test_two_packs_started_at_once_one_runs_one_refuses(tmp_path):
    """As two hosts' cron jobs would: the one that takes the lock packs everything, the
    other exits 2 at once naming it; afterwards every photo reads back the same."""
    from instastore.storage import open_stores

    from ..factories import land_photos, read_back

    stores = await open_stores(Settings(data_dir=tmp_path))
    try:
        made = await land_photos(stores, 6, {"original": 3000, "thumb": 500})
    finally:
        await stores.close()
    pack = ("pack", "--min-age", "0", "--landed-grace", "3", "--data-dir", str(tmp_path))
    first, second = await asyncio.gather(
        asyncio.to_thread(instastore, *pack), asyncio.to_thread(instastore, *pack)
    )
    assert sorted([first.returncode, second.returncode]) == [0, 2], (first, second)
    ran, refused = (first, second) if first.returncode == 0 else (second, first)
    assert "switched 6 photo(s)" in ran.stdout
    assert "the storage job lock is held by instastore pack on" in refused.stderr
    stores = await open_stores(Settings(data_dir=tmp_path))
    try:
        await read_back(stores, made, packed=True)
    finally:
        await stores.close()


async def test_gc_on_a_bench_seeded_store_removes_nothing(tmp_path, monkeypatch):
    """The issue's run: seeded photos share a pool of blobs under keys that name no photo."""
    from bench import seed

    monkeypatch.setattr(seed, "STATE_DIR", tmp_path / "state")
    data = tmp_path / "D"
    await seed.seed(
        Settings(data_dir=data),
        posters=5,
        readers=2,
        photos=50,
        pool=3,
        days=60,
        follows_per_reader=100,
    )
    blobs = sorted(p for p in (data / "blobs").rglob("*") if p.is_file() and ".tmp" not in p.parts)
    assert len(blobs) == 9
    done = await asyncio.to_thread(instastore, "gc", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "read 50 photo record(s) pointing at 9 blob(s)"  # a progress line
    assert lines[-1].startswith("checked 9 blob(s): removed 0 orphan(s)")
    assert (
        sorted(p for p in (data / "blobs").rglob("*") if p.is_file() and ".tmp" not in p.parts)
        == blobs
    )


async def test_pack_on_a_bench_seeded_store_then_gc_removes_nothing(tmp_path, monkeypatch):
    """Seeded photos share a pool of blobs: each becomes one needle every record points
    at; afterwards the store holds one volume, and every rendition reads back the same."""
    from bench import seed
    from instastore.lifecycle import volumes
    from instastore.storage import open_stores

    monkeypatch.setattr(seed, "STATE_DIR", tmp_path / "state")
    data = tmp_path / "D"
    await seed.seed(
        Settings(data_dir=data),
        posters=5,
        readers=2,
        photos=50,
        pool=3,
        days=60,
        follows_per_reader=100,
    )
    before = {
        str(p.relative_to(data / "blobs")): p.read_bytes()
        for p in (data / "blobs").rglob("*")
        if p.is_file() and ".tmp" not in p.parts
    }
    stores = await open_stores(Settings(data_dir=data))
    try:
        photos = [p async for p in stores.photos.scan_photos()]
    finally:
        await stores.close()
    done = await asyncio.to_thread(
        instastore, "pack", "--min-age", "0", "--landed-grace", "0", "--data-dir", str(data)
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        .splitlines()[-1]
        .startswith("switched 50 photo(s) to 9 needle(s) in 1 new volume(s)")
    )
    left = [p for p in (data / "blobs").rglob("*") if p.is_file() and ".tmp" not in p.parts]
    assert [p.suffix for p in left] == [".vol"]
    done = await asyncio.to_thread(instastore, "gc", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("checked 1 blob(s): removed 0 orphan(s)")
    stores = await open_stores(Settings(data_dir=data))
    try:
        for old in photos:
            now = await stores.photos.get_photo(old.id)
            for was, is_ in zip(old.renditions, now.renditions, strict=True):
                assert volumes.is_needle(is_.locator)
                read = b"".join([c async for c in volumes.open_locator(stores.blobs, is_.locator)])
                assert read == before[was.locator]
    finally:
        await stores.close()


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path):
    done = instastore("serve", env={"INSTASTORE_PORT": "eighty"})
    assert done.returncode == 2
    assert done.stderr.strip() == "instastore: INSTASTORE_PORT must be int, not 'eighty'"


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("pack", "--min-age", "-1"), "argument --min-age: must be 0 or more seconds, not -1"),
        (
            ("pack", "--landed-grace", "soon"),
            "--landed-grace: must be a number of seconds, not 'soon'",
        ),
        (("compact", "--landed-grace", "-5"), "--landed-grace: must be 0 or more seconds, not -5"),
        (("compact", "--threshold", "2"), "argument --threshold: must be a share from 0 to 1"),
        (
            ("compact", "--threshold", "half"),
            "--threshold: must be a share from 0 to 1, not 'half'",
        ),
    ],
)
def test_a_bad_job_argument_is_refused_with_the_reason(tmp_path, args, why):
    done = instastore(*args, "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert why in done.stderr
    assert not (tmp_path / "data").exists()  # refused before opening any store


def test_make_test_never_takes_over_a_cluster_it_did_not_start(tmp_path):
    """`make test` wipes its cluster at the end: pointed at an existing one, it refuses."""
    state = tmp_path / "state.json"
    state.write_text('{"spec": "someone else\'s"}')
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "INSTASTORE_CLUSTER_DIR": str(tmp_path)},
    )
    assert done.returncode == 2
    assert f"{tmp_path} holds a cluster already" in done.stderr
    assert state.read_text() == '{"spec": "someone else\'s"}'  # and it is left as it was
    assert done.stdout == ""  # refused before installing or starting anything


def test_the_core_never_imports_a_driver_or_http():
    """Only storage adapters speak to Cassandra and WebHDFS; only the server speaks HTTP."""
    allowed = {"storage", "cluster", "server"}
    offenders = []
    for path in (ROOT / "instastore").rglob("*.py"):
        if allowed & set(path.relative_to(ROOT / "instastore").parts):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in {"cassandra", "aiohttp"}
            ]
    assert not offenders


def test_serve_with_two_workers_shares_one_port(tmp_path):
    import json
    import time
    import urllib.request

    env = {"INSTASTORE_DATA_DIR": str(tmp_path), "INSTASTORE_WORKERS": "2"}
    with serve(env, tmp_path / "serve.log") as port:
        deadline = time.monotonic() + 60
        listeners: set[str] = set()
        while time.monotonic() < deadline and len(listeners) < 2:
            out = subprocess.run(
                ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True
            ).stdout
            listeners = set(re.findall(r"pid=(\d+)", out))
            time.sleep(0.2)
        assert len(listeners) == 2, "two worker processes should listen on the port"
        body = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz"))
        assert body["status"] == "ready"
