"""docs/OPERATIONS.md is true: every command block in it is run as written by a test
(this module runs the cheap ones on the local cluster; the others run where they belong,
under load or in the restore drill)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ..runbook import blocks, run_block
from ..serving import serve

TESTS = Path(__file__).resolve().parents[1]
RUN_BY = {
    "add-cassandra": "cluster/test_cluster_operations.py",
    "remove-cassandra": "cluster/test_cluster_operations.py",
    "add-datanode": "cluster/test_cluster_operations.py",
    "remove-datanode": "cluster/test_cluster_operations.py",
    "replace-cassandra": "cluster/test_cluster_operations.py",
    "backup": "cluster/test_backups.py",
    "restore": "cluster/test_backups.py",
    "repair": "commands/test_runbook.py",
    "status": "commands/test_runbook.py",
    "metrics": "commands/test_runbook.py",
    "migrate": "commands/test_runbook.py",
    "moderation": "commands/test_moderation_command.py",
}


def test_every_block_is_run_by_a_test():
    found = blocks()
    assert set(found) == set(RUN_BY), "blocks and their tests differ"
    for name, module in RUN_BY.items():
        text = (TESTS / module).read_text()
        assert "run_block" in text and f'"{name}"' in text, (name, module)
        assert found[name].strip(), name


@pytest.mark.cassandra
@pytest.mark.hdfs
def test_migrate_status_and_repair(local_cluster):
    from instastore.config import Settings
    from instastore.storage.cassandra.session import build_cluster

    keyspace = f"runbook_{uuid.uuid4().hex[:8]}"
    env = {
        **local_cluster.client_settings(),
        "INSTASTORE_CLUSTER_DIR": str(local_cluster.root),
        "INSTASTORE_CASSANDRA_KEYSPACE": keyspace,
    }
    try:
        migrated = run_block("migrate", env)
        assert migrated.returncode == 0, migrated.stderr
        assert "applied" in migrated.stdout
        status = run_block("status", env)
        assert status.returncode == 0, status.stderr
        assert "UN  127.0.0.1" in status.stdout  # nodetool status
        assert "Live datanodes (1)" in status.stdout  # dfsadmin -report
        assert "is HEALTHY" in status.stdout  # fsck
        repaired = run_block("repair", env)
        assert repaired.returncode == 0, repaired.stderr
        assert "repaired the primary ranges of cassandra1" in repaired.stdout
    finally:
        settings = Settings.from_sources(environ=env)
        driver = build_cluster(settings)
        try:
            driver.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        finally:
            driver.shutdown()


def test_metrics(tmp_path):
    import urllib.request

    env = {"INSTASTORE_DATA_DIR": str(tmp_path / "data"), "INSTASTORE_METRICS_TOKEN": "t" * 32}
    with serve(env, tmp_path / "serve.log") as port:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10):
            pass  # one request, so the block's grep has a line to find
        done = run_block("metrics", env, cwd=tmp_path, port=port)
    assert done.returncode == 0, done.stderr
    assert 'instastore_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in (
        done.stdout
    )
    assert 'instastore_job_runs_total{job="purge",outcome="ok"} 1.0' in done.stdout
