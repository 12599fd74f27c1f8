"""Operators' work under live load: a real `instastore serve` on the
shared 3 + 3 cluster (replication factor 3 in Cassandra and HDFS) serves a steady mix of
uploads with distinct images, media reads, timelines and searches while

1. a 4th Cassandra node joins (`cluster add cassandra`: bootstrap, then cleanup),
2. node 1 is decommissioned (`cluster remove cassandra1`),
3. a 4th DataNode joins (`cluster add datanode`: then the balancer),
4. DataNode 1 is decommissioned (`cluster remove datanode1`),
5. Cassandra node 2 is SIGKILLed and replaced (`cluster replace cassandra2`),

each by running docs/OPERATIONS.md's block for it as written.

No client retries: every request counts, and a failed one (an error status or a broken
connection) fails the test. Afterwards every acknowledged upload reads back
byte-identical, the new nodes own data (`nodetool status`) and `hdfs fsck` finds every
block whole. It changes the cluster's shape, so it runs after every other test of the
3 + 3 cluster (conftest.py). With ``INSTASTORE_OPS_REPORT=path`` the durations and the
load's p99 per phase are written there (quoted in bench/results/README.md, "Operations
under load").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from instastore.cluster.cassandra import states

from .. import samples
from ..factories import sign_up, upload_form
from ..runbook import run_block
from ..serving import serve_replicated

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cassandra,
    pytest.mark.hdfs,
    pytest.mark.reshapes_cluster,
    pytest.mark.timeout(1800),
]

CLIENTS = 2
PAUSE_S = 1.0  # between one client's rounds: a steady mix, not a stress test
STEADY_S = 3.0  # load before the first operation and after the last


@dataclass
class Load:
    """The mix and what came of each request, by phase."""

    http: aiohttp.ClientSession
    phase: str = "steady"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    acked: dict[str, tuple[str, dict]] = field(default_factory=dict)  # id -> (sha256, auth)
    thumbs: list[str] = field(default_factory=list)

    async def request(self, kind: str, method: str, url: str, **kw) -> dict | None:
        started = time.monotonic()
        phase = self.phase
        try:
            async with self.http.request(method, url, **kw) as resp:
                body = await resp.read()
                ok = 200 <= resp.status < 300
                detail = f"{resp.status} {body[:200]!r}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, body, detail = False, b"", repr(exc)
        self.latencies.setdefault(phase, []).append(time.monotonic() - started)
        if not ok:
            self.failures.append(f"[{phase}] {kind} {method} {url}: {detail}")
            return None
        return json.loads(body) if body[:1] in (b"{", b"[") else {}

    async def client(self, name: str, auth: dict, stop: asyncio.Event) -> None:
        rng = random.Random(name)
        while not stop.is_set():
            color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            image = await asyncio.to_thread(samples.image, "JPEG", (320, 240), color)
            form = upload_form(
                image, f"ops {name} sunset", filename="f.jpg", content_type="image/jpeg"
            )
            photo = await self.request("upload", "POST", "/v1/photos", data=form, headers=auth)
            if photo:
                self.acked[photo["id"]] = (hashlib.sha256(image).hexdigest(), auth)
                self.thumbs.append(photo["media"]["thumb"])
            if self.thumbs:
                await self.request("media", "GET", rng.choice(self.thumbs))
            await self.request("timeline", "GET", "/v1/timeline", headers=auth)
            await self.request("search", "GET", "/v1/search/photos", params={"q": "sunset"})
            await asyncio.sleep(PAUSE_S)


@pytest.fixture
def ops_server(cluster3, cluster3_keyspace, tmp_path):
    with serve_replicated(cluster3, cluster3_keyspace, tmp_path, "ops") as (base, settings, _):
        yield base, settings


async def test_nodes_join_leave_and_are_replaced_with_no_failed_request(cluster3, ops_server):
    base, settings = ops_server
    lines: list[str] = []
    timings: dict[str, float] = {}
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=60)) as http:
        load = Load(http)
        users = [await sign_up(http) for _ in range(CLIENTS)]
        for name, auth in users:  # everyone follows everyone: timelines have something
            for other, _ in users:
                if other != name:
                    resp = await http.put(f"/v1/users/{other}/follow", headers=auth)
                    assert resp.status in (200, 201, 204), await resp.text()
        stop = asyncio.Event()
        clients = [asyncio.create_task(load.client(n, a, stop)) for n, a in users]

        async def phase(name: str, block: str) -> None:
            """Run the runbook's block as written (docs/OPERATIONS.md) as the phase."""
            load.phase = name
            started = time.monotonic()
            env = {"INSTASTORE_CLUSTER_DIR": str(cluster3.root)}
            done = await asyncio.to_thread(run_block, block, env)
            timings[name] = time.monotonic() - started
            cluster3.reload()  # the command changed the state file: nodes joined or left
            lines.extend(done.stdout.splitlines())
            assert done.returncode == 0, f"{block}:\n{done.stdout}\n{done.stderr}"

        try:
            await asyncio.sleep(STEADY_S)
            await phase("add cassandra4 (bootstrap + cleanup)", "add-cassandra")
            await phase("remove cassandra1 (decommission)", "remove-cassandra")
            await phase("add datanode4 (+ balancer)", "add-datanode")
            await phase("remove datanode1 (decommission)", "remove-datanode")
            await phase("kill cassandra2, replace it by cassandra5", "replace-cassandra")
            load.phase = "after"
            await asyncio.sleep(STEADY_S)
        finally:
            stop.set()
            await asyncio.gather(*clients)

        report = _report(load, timings)
        print("\n".join([*lines, json.dumps(report, indent=2)]))
        if os.environ.get("INSTASTORE_OPS_REPORT"):
            text = json.dumps({**report, "progress": lines}, indent=2)
            await asyncio.to_thread(Path(os.environ["INSTASTORE_OPS_REPORT"]).write_text, text)
        assert len(load.acked) >= 20, f"too little load to mean anything: {len(load.acked)}"
        assert not load.failures, f"{len(load.failures)} failed request(s):\n" + "\n".join(
            load.failures[:20]
        )

        gate = asyncio.Semaphore(8)

        async def read_back(photo_id: str, digest: str, auth: dict) -> None:
            async with gate:
                async with http.get(f"/v1/photos/{photo_id}", headers=auth) as resp:
                    assert resp.status == 200, await resp.text()
                    original = (await resp.json())["media"]["original"]
                async with http.get(original, headers=auth) as resp:
                    assert resp.status == 200
                    assert hashlib.sha256(await resp.read()).hexdigest() == digest

        # Byte-identical, every one.
        await asyncio.gather(*(read_back(i, d, a) for i, (d, a) in load.acked.items()))

    names = {n.name for n in cluster3.cassandra_nodes}
    assert names == {"cassandra3", "cassandra4", "cassandra5"}, names
    status = cluster3.nodetool(["status", settings.cassandra_keyspace])
    ring = states(status.stdout)
    assert {ring.get(n.address) for n in cluster3.cassandra_nodes} == {"UN"}, status.stdout
    assert len(ring) == 3, status.stdout  # the decommissioned and the dead node are gone
    for node in cluster3.cassandra_nodes:  # each owns its share: 100% effective at RF 3
        line = next(x for x in status.stdout.splitlines() if node.address in x.split())
        assert "100.0%" in line, status.stdout
    assert {d.name for d in cluster3.datanodes} == {"datanode2", "datanode3", "datanode4"}
    fsck = cluster3.hdfs_tool("fsck", ["/"])
    assert "is HEALTHY" in fsck.stdout, fsck.stdout[-3000:]
    for counter in ("Under-replicated blocks", "Missing blocks", "Corrupt blocks"):
        line = next(x for x in fsck.stdout.splitlines() if x.strip().startswith(counter))
        assert line.split(":")[1].split()[0] == "0", line


def _report(load: Load, timings: dict[str, float]) -> dict:
    def p99(values: list[float]) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(len(values) * 0.99))]

    return {
        "acknowledged uploads": len(load.acked),
        "failed requests": len(load.failures),
        "seconds per operation": {k: round(v, 1) for k, v in timings.items()},
        "requests, median ms and p99 ms by phase": {
            phase: [
                len(values),
                round(statistics.median(values) * 1000, 1),
                round(p99(values) * 1000, 1),
            ]
            for phase, values in load.latencies.items()
        },
    }
