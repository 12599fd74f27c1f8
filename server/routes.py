"""The whole URL surface of the service, in one place."""

from __future__ import annotations

from aiohttp import web

from instastore.server import handlers


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", handlers.healthz, name="healthz")
    app.router.add_get("/readyz", handlers.readyz, name="readyz")
