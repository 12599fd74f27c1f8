"""Three `instastore serve` hosts on the cluster behind the nginx of deploy/nginx.conf,
used as clients use them: uploads with Idempotency-Keys (retried through the balancer with
the same key), media reads, timelines and searches. A host SIGKILLed in the middle of
uploads loses none of them; every host restarted in turn (SIGTERM: drain, then start
again) under a steady mix fails no request at all."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import uuid

import aiohttp
import pytest

from bench.hosts import FAIL_TIMEOUT_S, NGINX, Balancer

from .. import samples
from ..serving import TEST_COSTS

pytestmark = [pytest.mark.cassandra, pytest.mark.hdfs]


@pytest.fixture
def balancer(contract_cluster_settings, tmp_path):
    settings = contract_cluster_settings
    env = {
        "INSTASTORE_CASSANDRA_HOSTS": settings.cassandra_hosts,
        "INSTASTORE_CASSANDRA_PORT": str(settings.cassandra_port),
        "INSTASTORE_CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
        "INSTASTORE_WEBHDFS_URL": settings.webhdfs_url,
        "INSTASTORE_HDFS_ROOT": settings.hdfs_root,
        "INSTASTORE_DATA_DIR": str(tmp_path / "data"),
        "INSTASTORE_UPLOADS_PER_MINUTE": "100000",
        # A killed upload's key is taken over by its retry once stale: 6 s, not 30.
        "INSTASTORE_UPLOAD_CLAIM_STALE_SECONDS": "6",
        **{f"INSTASTORE_{k.upper()}": str(v) for k, v in TEST_COSTS.items()},
    }
    assert NGINX, "nginx is needed (apt-get install nginx-light; scripts/bootstrap does)"
    balancer = Balancer.up(env, tmp_path)
    yield balancer
    balancer.down()


class Client:
    """One user of the balancer; every answer it got, for the checks at the end."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.token = ""
        self.uploads: dict[str, tuple[str, bytes, dict]] = {}  # key -> title, bytes, photo
        self.failed: list[str] = []  # requests answered 5xx or cut off
        self.retried = 0  # uploads tried again with their key
        self.requests = 0

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def sign_up(self, name: str) -> None:
        body = {"username": name, "password": "behind nginx"}
        async with self.http.post(f"{self.base}/v1/users", json=body) as resp:
            assert resp.status == 201, await resp.text()
        async with self.http.post(f"{self.base}/v1/sessions", json=body) as resp:
            self.token = (await resp.json())["token"]

    async def upload(self, title: str, data: bytes, *, retry: bool) -> None:
        """Upload with a key of its own; with ``retry``, again with the same key until
        it is answered 200 or 201 (a client that knows its host may die)."""
        key = uuid.uuid4().hex
        for attempt in range(40):
            self.requests += 1
            form = aiohttp.FormData()
            form.add_field("file", data, filename="p.jpg", content_type="image/jpeg")
            form.add_field("title", title)
            try:
                async with self.http.post(
                    f"{self.base}/v1/photos",
                    data=form,
                    headers={**self.auth, "Idempotency-Key": key},
                ) as resp:
                    status, text = resp.status, await resp.text()
                body = json.loads(text) if text.startswith("{") else {"body": text[:200]}
            except aiohttp.ClientError as exc:
                status, body = None, {"error": repr(exc)}
            if status in (200, 201):
                self.uploads[key] = (title, data, body)
                return
            if not retry:
                self.failed.append(f"POST /v1/photos: {status} {body}")
                return
            self.retried += attempt == 0
            await asyncio.sleep(0.5 if status in (None, 502, 503, 504) else 1.0)
        raise AssertionError(f"upload {title!r} never succeeded: {status} {body}")

    async def get(self, path: str, auth: bool = True) -> None:
        self.requests += 1
        try:
            async with self.http.get(
                f"{self.base}{path}", headers=self.auth if auth else {}
            ) as resp:
                await resp.read()
                if resp.status >= 500:
                    self.failed.append(f"GET {path}: {resp.status}")
        except aiohttp.ClientError as exc:
            self.failed.append(f"GET {path}: {exc!r}")


def _image(i: int) -> bytes:
    return samples.image("JPEG", (96 + i % 50, 64 + i // 50))


async def test_a_host_killed_and_a_rolling_restart_lose_and_fail_nothing(balancer):
    async with aiohttp.ClientSession() as http:
        clients = [Client(http, balancer.base) for _ in range(3)]
        tag = uuid.uuid4().hex[:6]
        for i, client in enumerate(clients):
            await client.sign_up(f"lb{tag}{i}")
        for me, client in enumerate(clients):
            for other in set(range(3)) - {me}:
                async with http.put(
                    f"{balancer.base}/v1/users/lb{tag}{other}/follow", headers=client.auth
                ) as resp:
                    assert resp.status == 200, await resp.text()

        # 1. A host SIGKILLed in the middle of uploads: clients retry with their keys.
        async def kill_one():
            await asyncio.sleep(0.5)
            balancer.hosts[0].stop(signal.SIGKILL)
            await asyncio.sleep(1)
            await asyncio.to_thread(balancer.hosts[0].start)
            await asyncio.to_thread(balancer.hosts[0].wait_ready)
            await asyncio.sleep(FAIL_TIMEOUT_S + 0.5)  # nginx tries it again

        n = 0
        uploads = []
        for client in clients:
            for _ in range(8):
                uploads.append(client.upload(f"kill {tag} {n}", _image(n), retry=True))
                n += 1
        await asyncio.gather(kill_one(), *uploads)
        killed = sum(c.retried for c in clients), sum(c.requests for c in clients)

        # 2. Every host restarted in turn under a steady mix: no request may fail.
        rolling = True

        async def mix(client: Client, seed: int) -> None:
            nonlocal n
            i = seed
            while rolling:
                photo = next(iter(client.uploads.values()))[2]
                await client.get(f"/v1/photos/{photo['id']}")
                await client.get(photo["media"]["thumb"], auth=False)
                await client.get("/v1/timeline?limit=10")
                await client.get(f"/v1/search/photos?q=kill+{tag}")
                n += 1
                await client.upload(f"roll {tag} {n}", _image(n), retry=False)
                i += 1

        async def roll() -> None:
            nonlocal rolling
            await asyncio.sleep(1)
            for host in balancer.hosts:  # as docs/OPERATIONS.md says: one at a time
                assert await asyncio.to_thread(host.stop) == 0, host.log.read_text()[-2000:]
                await asyncio.to_thread(host.start)
                await asyncio.to_thread(host.wait_ready)
                await asyncio.sleep(FAIL_TIMEOUT_S + 0.5)  # nginx tries it again
            rolling = False

        await asyncio.gather(roll(), *(mix(c, i) for i, c in enumerate(clients)))
        failed = [f for c in clients for f in c.failed]
        assert not failed, failed
        mixed = sum(c.requests for c in clients) - killed[1]
        print(
            f"SIGKILL: {killed[0]} upload(s) retried in {killed[1]} request(s); rolling "
            f"restart: {mixed} request(s), 0 failed"
        )

        # Nothing acknowledged is lost or changed, no two uploads share a photo, and no
        # upload made two (each user's photos are exactly those answered).
        answered = [u for c in clients for u in c.uploads.values()]
        assert len({photo["id"] for _, _, photo in answered}) == len(answered) >= 30
        for i, client in enumerate(clients):
            async with http.get(
                f"{balancer.base}/v1/users/lb{tag}{i}/photos?limit=100", headers=client.auth
            ) as resp:
                listed = {p["id"] for p in (await resp.json())["items"]}
            assert listed == {photo["id"] for _, _, photo in client.uploads.values()}
        for client in clients:
            for title, data, photo in client.uploads.values():
                async with http.get(
                    f"{balancer.base}/v1/photos/{photo['id']}", headers=client.auth
                ) as resp:
                    assert resp.status == 200
                    record = await resp.json()
                assert record["title"] == title
                async with http.get(
                    f"{balancer.base}{record['media']['original']}", headers=client.auth
                ) as resp:
                    assert resp.status == 200
                    assert (
                        hashlib.sha256(await resp.read()).digest() == hashlib.sha256(data).digest()
                    )
