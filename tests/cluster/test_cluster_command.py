"""`instastore cluster`: refuses clearly, never starts a second cluster, dies loudly.

The failure cases run the real command in a subprocess with its own --dir and a port
offset, so they never touch the cluster the other tests use."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

from instastore.cluster import LocalCluster
from instastore.storage.hdfs.webhdfs import WebHdfs

OFFSET = "3000"  # ports of a second cluster, clear of the test cluster's


def run_cluster(
    *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "instastore", "cluster", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or os.environ.copy(),
    )


def test_up_twice_does_not_start_a_second_cluster(local_cluster):
    pids = [d.pid for d in local_cluster.daemons()]
    done = run_cluster(
        "--dir",
        str(local_cluster.root),
        "up",
        "--cassandra-nodes",
        str(local_cluster.spec.cassandra_nodes),
        "--datanodes",
        str(local_cluster.spec.datanodes),
        "--first-address",
        local_cluster.spec.first_address,
        "--port-offset",
        str(local_cluster.spec.port_offset),
        "--cassandra-heap",
        local_cluster.spec.cassandra_heap,
        "--hdfs-heap",
        local_cluster.spec.hdfs_heap,
    )
    assert done.returncode == 0, done.stderr
    assert "already running" in done.stdout
    assert [d.pid for d in LocalCluster(local_cluster.root).daemons()] == pids


def test_status_reports_every_node_running(local_cluster):
    done = run_cluster("--dir", str(local_cluster.root), "status")
    assert done.returncode == 0
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names == [d.name for d in local_cluster.daemons()]
    assert all(" running " in line for line in done.stdout.splitlines())


def test_nodetool_passes_arguments_through(local_cluster):
    done = run_cluster("--dir", str(local_cluster.root), "nodetool", "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\nUN ") == local_cluster.spec.cassandra_nodes


def test_hdfs_dfs_cat_passes_binary_files_through(local_cluster):
    folder = f"/cat-{uuid.uuid4().hex[:8]}"
    data = bytes(range(256)) * 64 + b"\xff\xd8\xff\xe0 not UTF-8 \x80\x81"

    async def write() -> None:
        client = WebHdfs(local_cluster.client_settings()["INSTASTORE_WEBHDFS_URL"], "instastore")
        try:
            await client.create(f"{folder}/blob.bin", one(data))
        finally:
            await client.close()

    asyncio.run(write())
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "instastore",
                "cluster",
                "--dir",
                str(local_cluster.root),
                "hdfs",
                "dfs",
                "-cat",
                f"{folder}/blob.bin",
            ],
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        assert done.stdout == data
    finally:
        local_cluster.hdfs_tool("dfs", ["-rm", "-r", "-f", folder])


async def one(data: bytes):
    yield data


def test_logs_show_each_node(local_cluster):
    done = run_cluster("--dir", str(local_cluster.root), "logs", "namenode", "-n", "5")
    assert done.returncode == 0
    assert done.stdout.startswith("==> namenode:")


def test_a_taken_port_is_one_clear_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 9042 + int(OFFSET)))
        holder.listen()
        done = run_cluster("--dir", str(tmp_path / "c"), "up", "--port-offset", OFFSET)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        f"instastore: port 127.0.0.1:{9042 + int(OFFSET)} (cassandra1 CQL) is already in use; "
        f"stop what holds it (`ss -ltnp 'sport = :{9042 + int(OFFSET)}'`) "
        "or run `instastore cluster down`"
    )
    assert not (tmp_path / "c" / "state.json").exists()


def test_missing_java_is_one_clear_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path)  # no java there
    done = run_cluster("--dir", str(tmp_path / "c"), "up", "--port-offset", OFFSET, env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("instastore: Java 17 is required but no `java` was found")


def test_wrong_java_version_is_one_clear_line(tmp_path):
    fake = tmp_path / "jdk" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    fake.chmod(0o755)
    env = dict(os.environ, JAVA_HOME=str(tmp_path / "jdk"))
    done = run_cluster("--dir", str(tmp_path / "c"), "up", "--port-offset", OFFSET, env=env)
    assert done.returncode == 1
    assert "Java 17 is required but" in done.stderr and "is Java 11" in done.stderr


def test_missing_maven_is_one_clear_line(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(shutil.which("java"))
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env.update(PATH=str(bin_dir), INSTASTORE_CACHE_DIR=str(tmp_path / "empty-cache"))
    done = run_cluster("--dir", str(tmp_path / "c"), "up", "--port-offset", OFFSET, env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("instastore: Maven is required")


def test_a_node_that_dies_while_starting_fails_with_its_log(tmp_path, local_cluster):
    # local_cluster: the jars are cached already. A 1 KiB heap makes the JVM exit at once.
    done = run_cluster(
        "--dir", str(tmp_path / "c"), "up", "--port-offset", OFFSET, "--cassandra-heap", "1k"
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == "instastore: cassandra1 died while starting; see its log below"
    assert "Too small maximum heap" in done.stderr
    after = LocalCluster(tmp_path / "c")
    assert after.daemons() and not after.running()  # nothing left behind


def test_an_unknown_node_name_is_one_clear_line(local_cluster):
    done = run_cluster("--dir", str(local_cluster.root), "logs", "cassandra9")
    assert done.returncode == 1
    assert done.stderr.startswith("instastore: no node named 'cassandra9'; nodes: cassandra1")
    done = run_cluster("--dir", str(local_cluster.root), "nodetool", "--node", "namenode", "status")
    assert done.returncode == 1 and "namenode is not a Cassandra node" in done.stderr


@pytest.mark.parametrize("flags", [["--cassandra-nodes", "0"], ["--datanodes", "10"]])
def test_a_cluster_size_out_of_range_is_refused(tmp_path, flags):
    done = run_cluster("--dir", str(tmp_path / "c"), "up", "--port-offset", OFFSET, *flags)
    assert done.returncode == 1
    assert "1 to 9 Cassandra nodes and 1 to 9 DataNodes" in done.stderr
    assert not (tmp_path / "c" / "state.json").exists()
