"""kill -9 of a real `instastore serve` in the middle of an upload with an Idempotency-Key:
once the claim has gone stale, a retry with the same key takes it over and finishes the
upload, and the key never makes a second photo (embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import sqlite3
import time
import uuid

import aiohttp
import pytest

from .. import samples
from ..factories import sign_up, upload_form
from ..serving import spawn

STALE_S = 3  # the server's claim window (upload_claim_stale_seconds), short for the test


def claimed(db: str, key: str) -> bool:
    with (
        contextlib.suppress(sqlite3.OperationalError),  # not created yet
        contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn,
    ):
        return (
            conn.execute("SELECT 1 FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
            is not None
        )
    return False


async def post_photo(http: aiohttp.ClientSession, auth: dict, key: str, image: bytes, title: str):
    form = upload_form(image, title, filename="big.jpg", content_type="image/jpeg")
    return await http.post("/v1/photos", data=form, headers={**auth, "Idempotency-Key": key})


async def upload_until_done(http, auth: dict, key: str, image: bytes, within_s: float = 60.0):
    """Retry as a client would: on 409 and 503 after Retry-After, with the same key, for
    at most ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        resp = await post_photo(http, auth, key, image, "after the crash")
        if resp.status not in (409, 503):
            return resp
        assert time.monotonic() < deadline, f"the key is stuck: {resp.status} {await resp.text()}"
        await asyncio.sleep(min(float(resp.headers.get("Retry-After", "1")), 2.0))


@pytest.mark.timeout(180)
async def test_kill_9_mid_upload_then_the_retry_with_the_key_makes_one_photo(tmp_path):
    data_dir = tmp_path / "data"
    env = {
        "INSTASTORE_DATA_DIR": str(data_dir),
        "INSTASTORE_UPLOAD_CLAIM_STALE_SECONDS": str(STALE_S),
    }
    log = tmp_path / "serve.log"
    image = samples.image("JPEG", (6000, 4000))  # big enough that processing takes a while
    key = uuid.uuid4().hex

    proc, port = await asyncio.to_thread(spawn, env, log)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            name, auth = await sign_up(http)
            cut_short = asyncio.create_task(post_photo(http, auth, key, image, "cut short"))
            deadline = time.monotonic() + 60
            # The key is claimed: the upload is under way, between its claim and its save.
            while not await asyncio.to_thread(claimed, str(data_dir / "metadata.sqlite3"), key):
                assert time.monotonic() < deadline and not cut_short.done(), log.read_text()[-2000:]
                await asyncio.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(aiohttp.ClientError):
                await cut_short
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait, 30)

    proc, port = await asyncio.to_thread(spawn, env, log)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            listed = (await (await http.get(f"/v1/users/{name}/photos", headers=auth)).json())[
                "items"
            ]
            assert listed == [], "the kill came too late: the first upload had finished"
            resp = await upload_until_done(http, auth, key, image)
            assert resp.status == 201, await resp.text()
            photo = await resp.json()
            again = await upload_until_done(http, auth, key, image)
            assert again.status == 200 and (await again.json())["id"] == photo["id"]
            listed = (await (await http.get(f"/v1/users/{name}/photos", headers=auth)).json())[
                "items"
            ]
            assert [p["id"] for p in listed] == [photo["id"]]
            original = await http.get(photo["media"]["original"], headers=auth)
            assert original.status == 200
            assert hashlib.sha256(await original.read()).digest() == hashlib.sha256(image).digest()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()[-3000:]
