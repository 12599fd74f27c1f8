"""Health, readiness, metrics and the API description."""

from __future__ import annotations

import asyncio

from aiohttp import web
from instastore.server.handlers.common import services
from instastore.server.keys import DRAINING, SETTINGS
from instastore.server.openapi import spec

from instastore import __version__
from instastore import metrics as metric_families


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving (no store is touched)."""
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    """Metadata and blob storage answer: 200, or 503 with the reason of each that does not
    (and "server": "draining" once the process was told to stop)."""
    report = await services(request).health()
    draining = request.app.get(DRAINING)
    if draining is not None and draining.is_set():
        report["server"] = "draining: finishing its requests before it exits"
    ready = all(v == "ok" for v in report.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": report},
        status=200 if ready else 503,
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())


async def metrics(request: web.Request) -> web.Response:
    """Every metric in the Prometheus text format, without a user token; not on the
    public port when ``metrics_port`` gives /metrics a listener of its own."""
    if request.app.get(METRICS_ONLY) is None and request.app[SETTINGS].metrics_port:
        raise web.HTTPNotFound()  # as any path that is not there
    body = await asyncio.to_thread(metric_families.exposition)
    return web.Response(body=body, headers={"Content-Type": metric_families.CONTENT_TYPE})


# Set on the app of the separate /metrics listener (server/app.py, ``metrics_app``).
METRICS_ONLY = web.AppKey("metrics_only", bool)
