"""Health, readiness, metrics and the API description."""

from __future__ import annotations

import asyncio
import hmac
import json

from aiohttp import web
from instastore.server.handlers.common import services
from instastore.server.handlers.operation import JSON, PROBLEM_JSON, Operation, declare, ok, schema
from instastore.server.keys import DRAINING, SETTINGS
from instastore.server.openapi import DESCRIBED, DOCUMENT, HEADERS, spec

from instastore import __version__
from instastore import metrics as metric_families
from instastore.errors import NotAuthenticated


@declare(
    Operation(
        "healthz",
        "ops",
        "The process is up",
        "Answers as long as the process serves; no store is touched (a liveness probe).",
        {"200": ok("up", "Health")},
        auth=False,
    )
)
async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving (no store is touched)."""
    return web.json_response({"status": "ok", "version": __version__})


@declare(
    Operation(
        "readyz",
        "ops",
        "Metadata and blob storage answer",
        "A readiness probe: 200 while every store answers; 503 with the reason of each "
        "that does not, and once the process was told to stop (draining).",
        {"200": ok("ready", "Readiness")},
        auth=False,
        special={
            "503": {
                "description": (
                    "a store does not answer (a Readiness body), or the server "
                    "sheds load (a problem)"
                ),
                "headers": {"Retry-After": {**HEADERS["Retry-After"], "required": False}},
                "content": {
                    JSON: {"schema": schema("Readiness")},
                    PROBLEM_JSON: {"schema": schema("Problem")},
                },
            },
        },
    )
)
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


@declare(
    Operation(
        "openapi",
        "ops",
        "This document",
        "The OpenAPI 3.1 description of this service, with the limits of its settings in "
        "force (the longest title, the page size).",
        {"200": ok("the OpenAPI document", "OpenAPI")},
        auth=False,
    )
)
async def openapi(request: web.Request) -> web.Response:
    made = request.app[DOCUMENT]
    if "body" not in made:
        # Once per process, off the loop: its text patterns take a scan of all of Unicode.
        document = await asyncio.to_thread(spec, request.app[SETTINGS], request.app[DESCRIBED])
        made.setdefault("body", json.dumps(document).encode())
    return web.Response(body=made["body"], content_type="application/json")


@declare(
    Operation(
        "metrics",
        "ops",
        "Every metric in the Prometheus text format",
        "For the metrics token (Authorization: Bearer <metrics_token>; 401 without it); "
        "404 here when metrics_port gives /metrics a listener of its own.",
        {
            "200": {
                "description": "the metrics (docs/OPERATIONS.md, Metrics)",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
        ("404",),
        auth=False,
    )
)
async def metrics(request: web.Request) -> web.Response:
    """Every metric in the Prometheus text format: on the listener of its own that
    ``metrics_port`` gives it (and then not on the public port), else on the public port
    for the ``metrics_token`` alone."""
    if request.app.get(METRICS_ONLY) is None:
        settings = request.app[SETTINGS]
        if settings.metrics_port:
            raise web.HTTPNotFound()  # as any path that is not there
        # SECURITY: metrics are for operators. Upload outcomes, store calls and latencies
        # tell a stranger whether an upload's bytes were stored already (by anyone,
        # private accounts included): the public port serves them for the token only.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        wanted = settings.metrics_token.encode()
        if not (
            wanted
            and scheme.lower() == "bearer"
            and hmac.compare_digest(token.strip().encode(), wanted)
        ):
            raise NotAuthenticated(
                "/metrics needs 'Authorization: Bearer <metrics_token>' (or metrics_port)"
            )
    metric_families.fold()  # the counts this loop holds, before the files are read
    body = await asyncio.to_thread(metric_families.exposition)
    return web.Response(body=body, headers={"Content-Type": metric_families.CONTENT_TYPE})


# Set on the app of the separate /metrics listener (server/app.py, ``metrics_app``).
METRICS_ONLY = web.AppKey("metrics_only", bool)
