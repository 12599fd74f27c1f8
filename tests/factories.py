"""What the tests make: ids, user and photo records for the stores, users logged in and photos
uploaded through the HTTP API, and the check of a problem document that goes with it.

Media bytes (images, videos) are made by ``tests/samples.py``; a real server process by
``tests/serving.py``. Fixtures stay in the conftest files and import from here, never
the other way round.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from instastore import ids
from instastore.errors import NotFound
from instastore.lifecycle import volumes
from instastore.model import Kind, Photo, Rendition, User, Visibility

PASSWORD = "correct horse battery"

_clock_ms = [ids.now_ms()]
_generator = ids.IdGenerator(worker_id=7)


def new_id(at_ms: int | None = None) -> int:
    """A fresh id; at a given time when ``at_ms`` is set (to cross bucket boundaries)."""
    if at_ms is None:
        return _generator.next_id()
    _clock_ms[0] += 1
    return ids.make_id(at_ms, 8, _clock_ms[0] % 1024)


def make_user(name: str | None = None, **fields: Any) -> User:
    """A user record as the core would save it (a placeholder password hash)."""
    defaults: dict[str, Any] = {
        "display_name": "Ada",
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    }
    return User(
        id=new_id(),
        username=name or f"u{uuid.uuid4().hex[:12]}",
        password_hash="$argon2id$placeholder",
        **{**defaults, **fields},
    )


def make_photo(
    owner_id: int, title: str = "a photo", photo_id: int | None = None, **fields: Any
) -> Photo:
    """A photo record as the core would save it, with one thumbnail rendition."""
    photo_id = photo_id or new_id()
    fields = {"visibility": Visibility.PUBLIC, **fields}
    return Photo(
        id=photo_id,
        owner_id=owner_id,
        title=title,
        kind=Kind.PHOTO,
        secret=ids.new_media_secret(),
        sha256="ab" * 32,
        created_at=datetime.fromtimestamp(ids.unix_ms_of(photo_id) / 1000, tz=UTC),
        renditions=(Rendition("thumb", f"t/{photo_id}/thumb", "image/jpeg", 1234, 150, 100),),
        width=1500,
        height=1000,
        **fields,
    )


async def sign_up(
    http: aiohttp.ClientSession | TestClient, name: str | None = None, *, private: bool = False
) -> tuple[str, dict[str, str]]:
    """A new user, logged in: (username, Authorization headers). ``http`` is a client
    session with the server's base URL, or aiohttp's test client."""
    name = name or f"u{uuid.uuid4().hex[:12]}"
    credentials = {"username": name, "password": PASSWORD}
    resp = await http.post("/v1/users", json=credentials)
    assert resp.status == 201, await resp.text()
    resp = await http.post("/v1/sessions", json=credentials)
    assert resp.status == 201, await resp.text()
    headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    if private:
        resp = await http.patch("/v1/me", json={"private": True}, headers=headers)
        assert resp.status == 200, await resp.text()
    return name, headers


def upload_form(
    data: bytes,
    title: str = "a photo",
    *,
    visibility: str | None = None,
    filename: str = "f.bin",
    content_type: str = "application/octet-stream",
) -> aiohttp.FormData:
    """The multipart body of POST /v1/photos."""
    form = aiohttp.FormData()
    form.add_field("title", title)
    if visibility:
        form.add_field("visibility", visibility)
    form.add_field("file", io.BytesIO(data), filename=filename, content_type=content_type)
    return form


class Api:
    """A thin client for tests: the aiohttp test client plus sign-up and upload."""

    def __init__(self, client: TestClient, settings: Any) -> None:
        self.client = client
        self.settings = settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def user(self, name: str | None = None, private: bool = False) -> tuple[str, dict]:
        """A new user, logged in: (username, Authorization headers)."""
        return await sign_up(self.client, name, private=private)

    async def upload(
        self,
        headers: dict,
        data: bytes,
        title: str = "a photo",
        *,
        visibility: str | None = None,
        filename: str = "f.bin",
        extra_headers: dict | None = None,
    ) -> aiohttp.ClientResponse:
        form = upload_form(data, title, visibility=visibility, filename=filename)
        return await self.client.post(
            "/v1/photos", data=form, headers={**headers, **(extra_headers or {})}
        )

    async def photo(self, headers: dict, data: bytes, title: str = "a photo", **kw: Any) -> dict:
        resp = await self.upload(headers, data, title, **kw)
        assert resp.status == 201, await resp.text()
        return await resp.json()


async def problem(resp: aiohttp.ClientResponse, status: int) -> dict:
    """Assert the response is a problem document with this status; return it."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == status and body["type"].startswith("https://instastore.dev/problems/")
    assert body["detail"]
    return body


async def one(data: bytes):
    """``data`` as the one chunk of a blob put."""
    yield data


async def read(stores, locator: str) -> bytes:
    """The whole bytes behind a locator (a landed key or a needle)."""
    return b"".join([c async for c in volumes.open_locator(stores.blobs, locator)])


async def exists(stores, key: str) -> bool:
    """Whether the blob store holds ``key``."""
    try:
        await stores.blobs.size(key)
    except NotFound:
        return False
    return True


async def land_photos(
    stores, count: int, sizes: dict[str, int], owner_id: int = 1, age_ms: int = 3_600_000
) -> dict[int, dict[str, str]]:
    """``count`` photos ``age_ms`` old whose renditions of random bytes landed as uploads
    land them (one blob per rendition, then the record); sha256 of each by photo and name."""
    generator = ids.IdGenerator(worker_id=11, clock=lambda: ids.now_ms() - age_ms)
    made = {}
    for _ in range(count):
        photo_id = generator.next_id()
        renditions, digests = [], {}
        for name, size in sizes.items():
            data, key = os.urandom(size), f"{ids.bucket_of(photo_id)}/{photo_id}.{name}.jpg"
            await stores.blobs.put(key, one(data))
            renditions.append(Rendition(name, key, "image/jpeg", size))
            digests[name] = hashlib.sha256(data).hexdigest()
        photo = dataclasses.replace(
            make_photo(owner_id=owner_id, photo_id=photo_id),
            renditions=tuple(renditions),
            sha256=digests.get("original", "ab" * 32),
        )
        await stores.photos.save_photo(photo, [])
        made[photo_id] = digests
    return made


async def read_back(stores, made: dict[int, dict[str, str]], packed: bool = False) -> set[str]:
    """Assert every rendition of the photos ``land_photos`` made reads back with its sha256
    (each a needle, with ``packed``); return the blobs (volumes, landed keys) they use."""
    used = set()
    for photo_id, digests in made.items():
        photo = await stores.photos.get_photo(photo_id)
        for r in photo.renditions:
            assert volumes.is_needle(r.locator) or not packed, r
            data = await read(stores, r.locator)
            assert hashlib.sha256(data).hexdigest() == digests[r.name], (photo_id, r.name)
            used.add(volumes.blob_of(r.locator))
    return used


def remove_hdfs_root(settings) -> None:
    """Delete ``settings.hdfs_root`` and everything under it (a test's own folder), from
    synchronous code such as a fixture's teardown."""
    from instastore.storage.hdfs.webhdfs import WebHdfs

    async def remove() -> None:
        client = WebHdfs(settings.webhdfs_url, settings.hdfs_user)
        try:
            await client.delete(settings.hdfs_root, recursive=True)
        finally:
            await client.close()

    asyncio.run(remove())


def store_calls() -> dict[tuple[str, str], float]:
    """Calls into the stores so far, by store and operation (the metered stores' counts)."""
    from instastore.metrics import STORE_OPERATIONS

    return {
        (s.labels["store"], s.labels["operation"]): s.value
        for family in STORE_OPERATIONS.collect()
        for s in family.samples
        if s.name.endswith("_total")
    }
