"""Faults of the cluster under upload load: a real `instastore serve` on the shared 3 + 3
cluster (replication factor 3 in Cassandra and in HDFS) takes concurrent uploads with
Idempotency-Keys while a Cassandra node and then a DataNode are SIGKILLed and started
again. Clients retry as real ones do (same key, on 503, 409 and broken connections).

Afterwards: every acknowledged upload reads back byte-identical through the API, no
listed photo misses any of its media, no key made two photos, and no key is stuck."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import time
import uuid

import aiohttp
import pytest

from . import samples
from .factories import sign_up, upload_form
from .serving import serve_replicated

pytestmark = [pytest.mark.slow, pytest.mark.cassandra, pytest.mark.hdfs, pytest.mark.timeout(900)]

CLIENTS = 4  # concurrent uploaders, one user each
RETRY_FOR_S = 120.0  # a client gives up on a key after this long: the key would be stuck
PHASE_S = 8.0  # load before a kill, while a node is down, and after it is back


@dataclasses.dataclass
class Upload:
    user: str
    key: str
    sha256: str
    photo_id: str | None = None


@pytest.fixture(scope="module")
def fault_server(cluster3, cluster3_keyspace, tmp_path_factory):
    extra = {"INSTASTORE_UPLOAD_CLAIM_STALE_SECONDS": "10"}
    data_dir = tmp_path_factory.mktemp("faults")
    served = serve_replicated(cluster3, cluster3_keyspace, data_dir, "faults", extra)
    with served as (base, _settings, log):
        yield base, log


class Client:
    """One user uploading photo after photo, each with a key of its own, retrying each
    until it is acknowledged, as a mobile app would."""

    def __init__(self, http: aiohttp.ClientSession, name: str, auth: dict) -> None:
        self.http, self.name, self.auth = http, name, auth
        self.acked: list[Upload] = []
        self.retries = 0

    async def post(self, upload: Upload, image: bytes) -> tuple[int, dict]:
        form = upload_form(
            image, f"fault {upload.key[:6]}", filename="f.jpg", content_type="image/jpeg"
        )
        headers = {**self.auth, "Idempotency-Key": upload.key}
        async with self.http.post("/v1/photos", data=form, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def upload_once_acknowledged(self, image: bytes) -> Upload:
        upload = Upload(self.name, uuid.uuid4().hex, hashlib.sha256(image).hexdigest())
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                status, body = await self.post(upload, image)
            except (aiohttp.ClientError, TimeoutError):
                status, body = 0, {}
            if status in (200, 201):
                upload.photo_id = body["id"]
                return upload
            assert status in (0, 409, 503), f"upload answered {status}: {body}"
            assert time.monotonic() < deadline, f"key {upload.key} stuck: {status} {body}"
            self.retries += 1
            await asyncio.sleep(0.5)

    async def run(self, stop: asyncio.Event) -> None:
        rng = random.Random(self.name)
        while not stop.is_set():
            color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            image = await asyncio.to_thread(samples.image, "JPEG", (320, 240), color)
            self.acked.append(await self.upload_once_acknowledged(image))


async def kill_and_restart(cluster, node: str) -> None:
    await asyncio.sleep(PHASE_S)
    await asyncio.to_thread(cluster.kill_node, node)
    await asyncio.sleep(PHASE_S)
    await asyncio.to_thread(cluster.start_node, node)


async def sha256_of(http: aiohttp.ClientSession, url: str, auth: dict) -> tuple[int, str]:
    async with http.get(url, headers=auth) as resp:
        return resp.status, hashlib.sha256(await resp.read()).hexdigest()


async def listed_photos(client: Client) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        async with client.http.get(
            f"/v1/users/{client.name}/photos", params=params, headers=client.auth
        ) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def test_uploads_survive_killed_cassandra_and_datanode(cluster3, fault_server):
    base, _log = fault_server
    await asyncio.to_thread(cluster3.wait_ready)  # every node up (one may still be starting)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base, timeout=timeout) as http:
        clients = [Client(http, *await sign_up(http)) for _ in range(CLIENTS)]
        stop = asyncio.Event()
        load = [asyncio.create_task(c.run(stop)) for c in clients]
        try:
            await kill_and_restart(cluster3, "cassandra2")
            await kill_and_restart(cluster3, "datanode2")
            await asyncio.sleep(PHASE_S / 2)
        finally:
            stop.set()
            await asyncio.gather(*load)

        acked = [u for c in clients for u in c.acked]
        assert len(acked) >= 20, f"too little load to mean anything: {len(acked)} uploads"
        await asyncio.gather(*(check(http, client) for client in clients))
        print(
            f"{len(acked)} uploads acknowledged, {sum(c.retries for c in clients)} client retries"
        )


async def check(http: aiohttp.ClientSession, client: Client) -> None:
    by_key = {u.key: u for u in client.acked}
    listed = await listed_photos(client)
    # No key made two photos, and nothing is listed that no key acknowledged.
    assert sorted(p["id"] for p in listed) == sorted(u.photo_id for u in by_key.values())
    sent = {u.photo_id: u.sha256 for u in by_key.values()}
    for photo in listed:
        for name, url in photo["media"].items():  # no photo listed whose media is missing
            status, digest = await sha256_of(http, url, client.auth)
            assert status == 200, f"photo {photo['id']} lists {name} but it answers {status}"
            if name == "original":  # every acknowledged upload reads back byte-identical
                assert digest == sent[photo["id"]]
    other = samples.image()
    for upload in by_key.values():  # no key is stuck: a last retry returns its photo
        status, body = await client.post(upload, other)
        assert (status, body.get("id")) == (200, upload.photo_id), body
