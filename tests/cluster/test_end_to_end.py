"""A real `instastore serve` process on the cluster adapter, driven over HTTP; then
Hadoop's own tools and a fresh driver session check that the bytes and the rows are
where the service says."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import uuid

import aiohttp
import pytest
from cassandra.cluster import Cluster

from instastore import ids, search
from instastore.codec import decode_photo

from .. import samples
from ..serving import serve

pytestmark = [pytest.mark.cassandra, pytest.mark.hdfs]


@pytest.fixture
def server(cluster_settings, tmp_path):
    hdfs_root = f"/e2e-{uuid.uuid4().hex[:8]}"
    env = {
        "INSTASTORE_CASSANDRA_HOSTS": cluster_settings.cassandra_hosts,
        "INSTASTORE_CASSANDRA_PORT": str(cluster_settings.cassandra_port),
        "INSTASTORE_CASSANDRA_KEYSPACE": cluster_settings.cassandra_keyspace,
        "INSTASTORE_WEBHDFS_URL": cluster_settings.webhdfs_url,
        "INSTASTORE_HDFS_ROOT": hdfs_root,
        "INSTASTORE_DATA_DIR": str(tmp_path),
    }
    with serve(env, tmp_path / "serve.log") as port:
        yield f"http://127.0.0.1:{port}", hdfs_root, cluster_settings


async def test_serve_on_the_cluster_and_check_with_hadoop_and_the_driver(server, local_cluster):
    base, hdfs_root, settings = server
    image = samples.image("JPEG", (1200, 900), exif_gps=True)
    async with aiohttp.ClientSession(base) as http:
        assert (await (await http.get("/readyz")).json())["checks"] == {
            "cassandra": "ok",
            "hdfs": "ok",
        }
        name = f"e2e{uuid.uuid4().hex[:8]}"
        assert (
            await http.post("/v1/users", json={"username": name, "password": "end to end!"})
        ).status == 201
        token = (
            await (
                await http.post("/v1/sessions", json={"username": name, "password": "end to end!"})
            ).json()
        )["token"]
        auth = {"Authorization": f"Bearer {token}"}
        form = aiohttp.FormData()
        form.add_field("title", "Harbour at dawn")
        form.add_field("file", io.BytesIO(image), filename="x.jpg")
        resp = await http.post("/v1/photos", data=form, headers=auth)
        assert resp.status == 201, await resp.text()
        photo = await resp.json()
        large = await (await http.get(photo["media"]["large"])).read()
        assert (await (await http.get("/v1/search/photos?q=harbour")).json())["items"][0][
            "id"
        ] == photo["id"]

    pid = int(photo["id"])
    folder = (
        f"{hdfs_root}/blobs/{ids.bucket_of(pid)}"  # no folder of its own: one NameNode object less
    )
    listed = await asyncio.to_thread(local_cluster.hdfs_tool, "dfs", ["-ls", folder])
    assert listed.returncode == 0, listed.stderr
    assert {line.rsplit("/", 1)[1] for line in listed.stdout.splitlines() if "/" in line} == {
        f"{pid}.original.jpg",
        f"{pid}.thumb.jpg",
        f"{pid}.large.jpg",
    }
    original = await asyncio.to_thread(
        local_cluster.hdfs_tool, "dfs", ["-stat", "%b %r", f"{folder}/{pid}.original.jpg"]
    )
    assert original.stdout.split() == [str(len(image)), "1"]  # size, replication
    large_stat = await asyncio.to_thread(
        local_cluster.hdfs_tool, "dfs", ["-stat", "%b", f"{folder}/{pid}.large.jpg"]
    )
    assert large_stat.stdout.split() == [str(len(large))]  # the bytes the service served are HDFS's

    driver = Cluster([settings.cassandra_hosts], port=settings.cassandra_port, protocol_version=5)
    session = driver.connect(settings.cassandra_keyspace)
    try:
        row = session.execute(
            "SELECT record, deleted_at FROM photos WHERE photo_id = %s", (pid,)
        ).one()
        stored = decode_photo(row.record)
        assert stored.title == "Harbour at dawn" and row.deleted_at is None
        assert stored.rendition("large").size == len(large)
        assert stored.rendition("original").locator == f"{ids.bucket_of(pid)}/{pid}.original.jpg"
        owner = (
            session.execute("SELECT user_id FROM users_by_name WHERE username = %s", (name,))
            .one()
            .user_id
        )
        rows = session.execute(
            "SELECT photo_id FROM user_photos WHERE user_id = %s AND bucket = %s",
            (owner, ids.bucket_of(pid)),
        )
        assert [r.photo_id for r in rows] == [pid]
        for term in search.terms("Harbour at dawn"):
            hit = session.execute(
                "SELECT photo_id FROM title_terms "
                "WHERE term = %s AND bucket = %s AND photo_id = %s",
                (term, ids.bucket_of(pid), pid),
            ).one()
            assert hit is not None, term
    finally:
        driver.shutdown()


async def test_a_purged_photo_leaves_no_namenode_object(server, local_cluster):
    base, hdfs_root, settings = server
    async with aiohttp.ClientSession(base) as http:
        name = f"e2e{uuid.uuid4().hex[:8]}"
        assert (
            await http.post("/v1/users", json={"username": name, "password": "end to end!"})
        ).status == 201
        token = (
            await (
                await http.post("/v1/sessions", json={"username": name, "password": "end to end!"})
            ).json()
        )["token"]
        auth = {"Authorization": f"Bearer {token}"}
        form = aiohttp.FormData()
        form.add_field("title", "gone for good")
        form.add_field("file", io.BytesIO(samples.image("JPEG", (640, 480))), filename="x.jpg")
        photo = await (await http.post("/v1/photos", data=form, headers=auth)).json()
        assert (await http.delete(f"/v1/photos/{photo['id']}", headers=auth)).status in (200, 204)

    env = {
        "INSTASTORE_CASSANDRA_HOSTS": settings.cassandra_hosts,
        "INSTASTORE_CASSANDRA_PORT": str(settings.cassandra_port),
        "INSTASTORE_CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
        "INSTASTORE_WEBHDFS_URL": settings.webhdfs_url,
        "INSTASTORE_HDFS_ROOT": hdfs_root,
        "INSTASTORE_RETENTION_DAYS": "0",
    }
    for job in ("purge", "gc"):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "instastore", job],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
        )
        assert done.returncode == 0, done.stderr
    counted = await asyncio.to_thread(
        local_cluster.hdfs_tool, "dfs", ["-count", f"{hdfs_root}/blobs"]
    )
    assert counted.returncode == 0, counted.stderr
    folders, files = counted.stdout.split()[:2]
    assert (int(folders), int(files)) == (2, 0), (
        counted.stdout
    )  # blobs/ and blobs/.tmp, nothing else
