"""Health, readiness and the API description."""

from __future__ import annotations

from aiohttp import web
from instastore.server.handlers.common import services
from instastore.server.openapi import spec

from instastore import __version__


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving (no store is touched)."""
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    """Metadata and blob storage answer: 200, or 503 with the reason of each that does not."""
    report = await services(request).health()
    ready = all(v == "ok" for v in report.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": report},
        status=200 if ready else 503,
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())
