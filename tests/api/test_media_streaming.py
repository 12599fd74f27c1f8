"""A streamed media body (past the in-memory cache) whose blob read
fails. Before the head is sent: a clean 503 problem. After: the connection is cut, so
the client sees a body shorter than its Content-Length, and never a second response
written inside the first. Checked on the raw bytes of the wire, on both adapters."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from instastore.server.app import create_app
from instastore.server.keys import SERVICES

from instastore.errors import Unavailable

from .. import samples
from ..factories import Api

FIRST_BYTES = 100  # what the failing store hands out before it breaks


@pytest.fixture
async def streaming_api(aiohttp_client, adapter_settings):
    """The app with the media cache off: every rendition streams from the store."""
    settings = dataclasses.replace(adapter_settings, uploads_per_minute=1000, media_cache_bytes=0)
    return Api(await aiohttp_client(create_app(settings)), settings)


class CutShort:
    """The real blob store, except that a read gives FIRST_BYTES and then ends: with
    ``fail``, by raising (as a DataNode dying mid-read does), else silently (a short read)."""

    def __init__(self, real, fail: bool) -> None:
        self.real = real
        self.fail = fail

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def open(self, key, offset=0, length=None):
        async for chunk in self.real.open(key, offset, length):
            yield chunk[:FIRST_BYTES]
            if self.fail:
                raise Unavailable("the DataNode went away mid-read")
            return


async def raw_get(api: Api, path: str, keep_alive: bool = False) -> bytes:
    """Everything the server writes for one GET on a fresh connection until it closes it;
    with ``keep_alive``, a connection the server still holds open after 2 s appends
    b"<still open>"."""
    reader, writer = await asyncio.open_connection(api.client.server.host, api.client.server.port)
    connection = "" if keep_alive else "Connection: close\r\n"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n{connection}\r\n".encode())
    await writer.drain()
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 2):
            data += chunk
    except TimeoutError:
        data += b"<still open>"
    except ConnectionResetError:
        pass
    writer.close()
    return data


def split_response(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], {k.lower(): v for k, v in headers.items()}, body


async def large_rendition(api: Api) -> tuple[str, str]:
    """The URL and blob locator of a photo's large rendition."""
    _, headers = await api.user()
    body = await api.photo(headers, samples.picture(size=(1600, 1200)), "big")
    photo = await api.client.app[SERVICES].photos.get(int(body["id"]))
    return body["media"]["large"], photo.rendition("large").locator


async def test_a_read_failing_before_the_head_is_a_clean_503(streaming_api):
    url, locator = await large_rendition(streaming_api)
    assert await streaming_api.client.app[SERVICES].viewing.blobs.delete(
        locator
    )  # the bytes are lost
    raw = await raw_get(streaming_api, url)
    assert raw.count(b"HTTP/1.1 ") == 1, raw[:400]
    status, headers, body = split_response(raw)
    assert status.startswith("HTTP/1.1 503 ")
    assert (
        headers["content-type"].startswith("application/problem+json") and "retry-after" in headers
    )
    problem = json.loads(body[: int(headers["content-length"])])
    assert problem["status"] == 503 and "large" in problem["detail"]


async def test_a_read_failing_after_the_head_cuts_the_connection(streaming_api):
    url, _ = await large_rendition(streaming_api)
    services = streaming_api.client.app[SERVICES]
    full = await (await streaming_api.get(url)).read()
    assert len(full) > FIRST_BYTES
    services.viewing.blobs = CutShort(services.viewing.blobs, fail=True)
    raw = await raw_get(streaming_api, url)
    assert raw.count(b"HTTP/1.1 ") == 1, raw[-400:]  # never a second response in the body
    status, headers, body = split_response(raw)
    assert status.startswith("HTTP/1.1 200 ") and int(headers["content-length"]) == len(full)
    assert body == full[:FIRST_BYTES]  # short of Content-Length: the client knows it is cut
    assert b"problem" not in body
    # The service is fine afterwards.
    services.viewing.blobs = services.viewing.blobs.real
    assert await (await streaming_api.get(url)).read() == full


async def test_head_and_ranges_of_a_streamed_rendition(streaming_api):
    url, _ = await large_rendition(streaming_api)
    full = await (await streaming_api.get(url)).read()
    head = await streaming_api.head(url)
    assert (
        head.status == 200
        and int(head.headers["Content-Length"]) == len(full)
        and await head.read() == b""
    )
    part = await streaming_api.get(url, headers={"Range": "bytes=10-19"})
    assert part.status == 206 and await part.read() == full[10:20]


async def open(self, key, offset=0, length=None):
    async for chunk in self.real.open(key, offset, length):
        yield chunk[:FIRST_BYTES]
        return


async def test_a_short_read_of_a_cached_rendition_is_a_503_and_is_not_cached(api):
    _, headers = await api.user()
    body = await api.photo(headers, samples.image(), "short")
    services = api.client.app[SERVICES]
    services.viewing.blobs = CutShort(services.viewing.blobs, fail=False)
    resp = await api.get(body["media"]["large"])
    assert resp.status == 503 and resp.content_type == "application/problem+json"
    services.viewing.blobs = services.viewing.blobs.real
    resp = await api.get(body["media"]["large"])
    assert (
        resp.status == 200
        and len(await resp.read()) == int(resp.headers["Content-Length"]) > FIRST_BYTES
    )


async def test_a_short_read_of_a_streamed_rendition_cuts_the_connection(streaming_api):
    url, _ = await large_rendition(streaming_api)
    services = streaming_api.client.app[SERVICES]
    services.viewing.blobs = CutShort(services.viewing.blobs, fail=False)
    raw = await raw_get(streaming_api, url, keep_alive=True)
    status, headers, body = split_response(raw)
    assert raw.count(b"HTTP/1.1 ") == 1 and status.startswith("HTTP/1.1 200 ")
    # Cut, not kept alive: a next response on this connection would be read as the rest.
    assert len(body) == FIRST_BYTES < int(headers["content-length"])
