"""Behind a balancer: SIGTERM drains a real `instastore serve` (readiness 503, answers
close their connections, the listener closes, an upload in flight still finishes, then a
clean exit), and client addresses come from X-Forwarded-For only via trusted proxies."""

from __future__ import annotations

import asyncio
import signal
import uuid
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from instastore.server.guard import GuardedServer, Limits
from instastore.server.handlers.common import client_address
from instastore.server.keys import SETTINGS

from instastore.config import Settings
from instastore.errors import ConfigError

from .. import samples
from ..serving import spawn


async def test_sigterm_drains_then_exits(tmp_path):
    env = {"INSTASTORE_DATA_DIR": str(tmp_path / "data"), "INSTASTORE_DRAIN_SECONDS": "2"}
    proc, port = spawn(env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    image = samples.image("JPEG", (640, 480))
    try:
        async with aiohttp.ClientSession() as http:
            body = {"username": f"d{uuid.uuid4().hex[:8]}", "password": "drain me please"}
            assert (await http.post(f"{base}/v1/users", json=body)).status == 201
            token = (await (await http.post(f"{base}/v1/sessions", json=body)).json())["token"]

            async def slow_body():
                for i in range(0, len(image), len(image) // 8 + 1):
                    yield image[i : i + len(image) // 8 + 1]
                    await asyncio.sleep(0.5)  # about 4 s: SIGTERM comes in the middle

            async def upload() -> int:
                form = aiohttp.FormData()
                form.add_field("file", slow_body(), filename="p.jpg", content_type="image/jpeg")
                form.add_field("title", "in flight at SIGTERM")
                headers = {"Authorization": f"Bearer {token}"}
                async with (
                    aiohttp.ClientSession() as own,
                    own.post(f"{base}/v1/photos", data=form, headers=headers) as resp,
                ):
                    return resp.status

            in_flight = asyncio.create_task(upload())
            await asyncio.sleep(1)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 503
                assert resp.headers["Connection"] == "close"
                assert "draining" in (await resp.json())["checks"]["server"]
            await asyncio.sleep(2.5)  # past drain_seconds: the listener is closed
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.get(f"{base}/healthz")
            assert await in_flight == 201, "a request in flight at SIGTERM was cut off"
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _request(peer: str, forwarded: str | None, trusted: str):
    app = web.Application()
    app[SETTINGS] = Settings(trusted_proxies=trusted)
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 4321) if name == "peername" else default
    )
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return make_mocked_request(
        "POST", "/v1/sessions", headers=headers, app=app, transport=transport
    )


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        # SECURITY: anyone else's X-Forwarded-For is ignored, or it would pick its own limit.
        ("203.0.113.7", "198.51.100.1", "", "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", "127.0.0.1", "203.0.113.7"),
        ("127.0.0.1", "198.51.100.1", "127.0.0.1", "198.51.100.1"),
        # a client's own forged entry sits left of what the trusted proxies appended
        ("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.0.0.5", "127.0.0.1, 10.0.0.0/8", "198.51.100.1"),
        ("127.0.0.1", "not-an-address", "127.0.0.1", "127.0.0.1"),
        ("127.0.0.1", None, "127.0.0.1", "127.0.0.1"),
    ],
)
def test_client_address_believes_forwarded_headers_only_from_trusted_proxies(
    peer, forwarded, trusted, client
):
    assert client_address(_request(peer, forwarded, trusted)) == client


async def test_a_trusted_proxy_is_not_held_to_the_per_address_connection_cap():
    limits = Limits(10.0, 10.0, 10, 2, Settings(trusted_proxies="127.0.0.1").trusted_networks)
    guard = GuardedServer(limits, handler=mock.Mock(), request_factory=mock.Mock())
    assert [guard.admit("127.0.0.1") for _ in range(5)] == [None] * 5
    assert guard.admit("203.0.113.7") is None
    assert guard.admit("203.0.113.7") is None
    assert "too many connections from 203.0.113.7" in guard.admit("203.0.113.7")


def test_trusted_proxies_must_be_addresses_or_networks():
    with pytest.raises(ConfigError, match="trusted_proxies: 'nginx' is not an address"):
        Settings(trusted_proxies="127.0.0.1, nginx")
