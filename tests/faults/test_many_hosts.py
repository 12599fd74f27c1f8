"""Several `instastore serve` processes on one store, as several hosts behind a balancer
run: each leases its own worker number, so uploads sent to all of them at once (the same
bytes, deduplicated, with Idempotency-Keys), one host killed with SIGKILL in the middle
and its clients retrying on the other with the same keys, lose nothing: every upload
answered 201 or 200 names a photo of its own, with its own title and its own bytes.
On the embedded default (one data folder) and on the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from .. import samples
from ..serving import free_port, serve, spawn

UPLOADS = 48  # per run: half to each host, the killed host's retried on the other


@pytest.fixture(params=["embedded", pytest.param("cluster", marks=pytest.mark.cluster)])
def store_env(request, tmp_path) -> dict[str, str]:
    """The settings of one store for every host: a data folder, or the cluster's keyspace
    and an HDFS folder of this test."""
    env = {"INSTASTORE_DATA_DIR": str(tmp_path / "data"), "INSTASTORE_UPLOADS_PER_MINUTE": "1000"}
    if request.param == "cluster":
        settings = request.getfixturevalue("contract_cluster_settings")
        env |= {
            "INSTASTORE_CASSANDRA_HOSTS": settings.cassandra_hosts,
            "INSTASTORE_CASSANDRA_PORT": str(settings.cassandra_port),
            "INSTASTORE_CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
            "INSTASTORE_WEBHDFS_URL": settings.webhdfs_url,
            "INSTASTORE_HDFS_ROOT": settings.hdfs_root,
        }
    return env


async def _upload(http: aiohttp.ClientSession, base: str, token: str, key: str, title: str, data):
    form = aiohttp.FormData()
    form.add_field("file", data, filename="p.jpg", content_type="image/jpeg")
    form.add_field("title", title)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    async with http.post(f"{base}/v1/photos", data=form, headers=headers) as resp:
        return resp.status, await resp.json()


@contextlib.contextmanager
def two_hosts(env: dict[str, str], folder: Path) -> Iterator[tuple[str, str]]:
    """Two `instastore serve` processes on one store: their base URLs."""
    with serve(env, folder / "a.log") as port_a, serve(env, folder / "b.log") as port_b:
        yield f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"


async def _account(http: aiohttp.ClientSession, a: str, b: str, prefix: str) -> tuple[str, str]:
    """A user signed up through host A and logged in through host B: (name, token)."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    body = {"username": name, "password": "many hosts!"}
    assert (await http.post(f"{a}/v1/users", json=body)).status == 201
    return name, (await (await http.post(f"{b}/v1/sessions", json=body)).json())["token"]


async def test_two_hosts_on_one_store_lose_no_upload(store_env, tmp_path):
    image = samples.image("JPEG", (320, 240))
    with serve(store_env, tmp_path / "b.log") as port_b:
        doomed, port_a = spawn(store_env, tmp_path / "a.log")
        try:
            a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
            async with aiohttp.ClientSession() as http:
                _, token = await _account(http, a, b, "many")
                jobs = [(f"key-{i}", f"upload {i} {uuid.uuid4().hex[:6]}") for i in range(UPLOADS)]

                async def first_try(i: int, key: str, title: str):
                    base = a if i % 2 else b
                    try:
                        return await _upload(http, base, token, key, title, image)
                    except aiohttp.ClientError:
                        return None, None  # host A killed under it: retried below

                async def kill_a_soon():
                    await asyncio.sleep(0.3)
                    os.kill(doomed.pid, signal.SIGKILL)

                killer = asyncio.create_task(kill_a_soon())
                first = await asyncio.gather(*(first_try(i, k, t) for i, (k, t) in enumerate(jobs)))
                await killer
                answers: dict[str, dict] = {}
                for (key, title), (status, photo) in zip(jobs, first, strict=True):
                    for _ in range(20):  # the same key again through the live host
                        if status in (200, 201):
                            break
                        if status is not None:
                            assert status in (409, 503), photo  # in progress, or retry
                            await asyncio.sleep(2)
                        status, photo = await _upload(http, b, token, key, title, image)
                    assert status in (200, 201), photo
                    answers[key] = photo
                ids = {photo["id"] for photo in answers.values()}
                assert len(ids) == UPLOADS, "two uploads were answered with one photo"
                for key, title in jobs:
                    photo_id = answers[key]["id"]
                    async with http.get(
                        f"{b}/v1/photos/{photo_id}", headers={"Authorization": f"Bearer {token}"}
                    ) as resp:
                        assert resp.status == 200
                        record = await resp.json()
                    assert record["title"] == title, "an acknowledged upload holds another's record"
                    async with http.get(
                        f"{b}{record['media']['original']}",
                        headers={"Authorization": f"Bearer {token}"},
                    ) as resp:
                        assert resp.status == 200
                        assert (
                            hashlib.sha256(await resp.read()).digest()
                            == hashlib.sha256(image).digest()
                        )
        finally:
            if doomed.poll() is None:
                doomed.kill()
            doomed.wait()


def test_a_fixed_worker_id_held_by_a_live_host_is_refused(store_env, tmp_path):
    env = store_env | {"INSTASTORE_WORKER_ID": "4242"}
    with serve(env, tmp_path / "first.log"):
        second = subprocess.run(
            [sys.executable, "-m", "instastore", "serve"],
            env={**os.environ, **env, "INSTASTORE_PORT": str(free_port())},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert second.returncode == 2, second.stderr[-2000:]
    assert "worker_id 4242 is held by instastore serve on" in second.stderr
    assert "leave worker_id unset (auto)" in second.stderr


async def test_access_taken_away_on_one_host_is_enforced_by_another_within_5_s(store_env, tmp_path):
    """An account made private through host A: a stranger reading through host B (which
    has the owner and the photo cached) is refused within the record cache's 5 s, for the
    photo, its media URLs and the owner's photo list; a photo deleted through A, and its
    media, too."""
    image = samples.image("JPEG", (200, 150))
    with two_hosts(store_env, tmp_path) as (a, b):
        async with aiohttp.ClientSession() as http:
            name, token = await _account(http, a, a, "priv")
            owner = {"Authorization": f"Bearer {token}"}
            status, kept = await _upload(http, a, token, "k1", "will go private", image)
            assert status == 201
            status, gone = await _upload(http, a, token, "k2", "will be deleted", image)
            assert status == 201

            async def seen(path: str) -> bool:
                """Does a stranger see it through host B (for a list: any item)?"""
                async with http.get(f"{b}{path}") as resp:
                    if resp.status != 200:
                        return False
                    if not path.endswith("/photos"):
                        return True
                    return bool((await resp.json())["items"])

            gone_media = (await (await http.get(f"{b}/v1/photos/{gone['id']}")).json())["media"]
            kept_media = (await (await http.get(f"{b}/v1/photos/{kept['id']}")).json())["media"]
            # Media URLs handed out before stop working for a stranger too: those of an
            # account turned private, and of a deleted photo.
            paths = [
                f"/v1/photos/{kept['id']}",
                f"/v1/users/{name}/photos",
                f"/v1/photos/{gone['id']}",
                gone_media["thumb"],
                kept_media["large"],
            ]
            assert all([await seen(p) for p in paths])  # B now caches the owner and photos
            assert (
                await http.patch(f"{a}/v1/me", json={"private": True}, headers=owner)
            ).status == 200
            assert (await http.delete(f"{a}/v1/photos/{gone['id']}", headers=owner)).status == 204
            changed = asyncio.get_running_loop().time()
            waited = {}
            for path in paths:
                while await seen(path):
                    assert asyncio.get_running_loop().time() - changed < 6, f"{path} still seen"
                    await asyncio.sleep(0.2)
                waited[path] = asyncio.get_running_loop().time() - changed
            assert max(waited.values()) < 6, waited


async def test_a_follow_ended_on_one_host_ends_the_timeline_on_another_within_5_s(
    store_env, tmp_path
):
    """A reader follows a private account (approved), reads both timelines through host B
    (which then caches the followee list and the ranked "top" window), and unfollows
    through host A: within 5 s host B shows none of that account's photos, and at once
    serves no more of the media URL A bound to that reader."""
    image = samples.image("JPEG", (120, 90))
    with two_hosts(store_env, tmp_path) as (a, b):
        async with aiohttp.ClientSession() as http:
            owner_name, owner_token = await _account(http, a, a, "own")
            reader_name, reader_token = await _account(http, a, b, "rdr")
            owner = {"Authorization": f"Bearer {owner_token}"}
            reader = {"Authorization": f"Bearer {reader_token}"}
            assert (await http.patch(f"{a}/v1/me", json={"private": True}, headers=owner)).ok
            status, photo = await _upload(http, a, owner_token, "t1", "followers only", image)
            assert status == 201
            async with http.put(f"{a}/v1/users/{owner_name}/follow", headers=reader) as resp:
                assert resp.status == 200, await resp.text()
            async with http.post(
                f"{a}/v1/me/requests/{reader_name}/approve", headers=owner
            ) as resp:
                assert resp.status == 200, await resp.text()

            async def shown(order: str) -> bool:
                async with http.get(f"{b}/v1/timeline?order={order}", headers=reader) as resp:
                    assert resp.status == 200
                    return photo["id"] in {p["id"] for p in (await resp.json())["items"]}

            deadline = asyncio.get_running_loop().time() + 10
            while not (await shown("top") and await shown("recent")):  # B's caches are 5 s
                assert asyncio.get_running_loop().time() < deadline, "never shown"
                await asyncio.sleep(0.5)
            async with http.get(f"{a}/v1/photos/{photo['id']}", headers=reader) as resp:
                thumb = (await resp.json())["media"]["thumb"]  # bound to the reader, by A
            async with http.get(f"{b}{thumb}") as resp:
                assert resp.status == 200  # B checks A's binding: one key for all hosts
            async with http.delete(f"{a}/v1/users/{owner_name}/follow", headers=reader) as resp:
                assert resp.status == 204, await resp.text()
            ended = asyncio.get_running_loop().time()
            async with http.get(f"{b}{thumb}") as resp:
                assert resp.status == 404  # the follow itself is read, never cached
            for order in ("top", "recent"):
                while await shown(order):
                    assert asyncio.get_running_loop().time() - ended < 5.5, (
                        f"{order} still shows it"
                    )
                    await asyncio.sleep(0.2)


async def test_a_block_and_a_takedown_elsewhere_are_enforced_by_another_host_within_5_s(
    store_env, tmp_path
):
    """Host B has a viewer's reads of an owner's photos cached (records, owner, the
    hidden-item cache). The owner blocks the viewer through host A, and an operator takes
    another photo down with `instastore moderation hide` (a third process): within 5 s
    host B answers 404 to the viewer for the owner, the list and the photo, and to
    everyone for the taken-down photo and its media."""
    image = samples.image("JPEG", (120, 90))
    with two_hosts(store_env, tmp_path) as (a, b):
        async with aiohttp.ClientSession() as http:
            owner_name, owner_token = await _account(http, a, a, "blk")
            viewer_name, viewer_token = await _account(http, a, b, "vwr")
            viewer = {"Authorization": f"Bearer {viewer_token}"}
            status, kept = await _upload(http, a, owner_token, "b1", "seen until blocked", image)
            assert status == 201
            status, taken = await _upload(http, a, owner_token, "b2", "taken down", image)
            assert status == 201

            async def seen(path: str, headers: dict[str, str]) -> bool:
                async with http.get(f"{b}{path}", headers=headers) as resp:
                    assert resp.status in (200, 404), (path, resp.status, await resp.text())
                    return resp.status == 200

            async with http.get(f"{b}/v1/photos/{taken['id']}") as resp:
                taken_media = (await resp.json())["media"]
            by_viewer = [
                f"/v1/photos/{kept['id']}",
                f"/v1/users/{owner_name}",
                f"/v1/users/{owner_name}/photos",
            ]
            by_anyone = [f"/v1/photos/{taken['id']}", taken_media["thumb"], taken_media["large"]]
            checks = [(p, viewer) for p in by_viewer] + [(p, {}) for p in by_anyone]
            assert all([await seen(p, h) for p, h in checks])  # now cached by host B

            owner = {"Authorization": f"Bearer {owner_token}"}
            async with http.put(f"{a}/v1/users/{viewer_name}/block", headers=owner) as resp:
                assert resp.status in (200, 204), await resp.text()
            hide = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "instastore", "moderation", "hide", "photo", taken["id"]],
                env={**os.environ, **store_env},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert hide.returncode == 0, hide.stderr
            changed = asyncio.get_running_loop().time()
            waited = {}
            for path, headers in checks:
                while await seen(path, headers):
                    assert asyncio.get_running_loop().time() - changed < 6, f"{path} still seen"
                    await asyncio.sleep(0.2)
                waited[path] = round(asyncio.get_running_loop().time() - changed, 1)
            assert max(waited.values()) < 6, waited
            # The owner still sees both (a takedown answers 404 to all but its owner).
            async with http.get(f"{b}/v1/photos/{taken['id']}", headers=owner) as resp:
                assert resp.status == 200
