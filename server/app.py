"""The app factory: ``create_app(settings)`` builds the application, with the stores
opened and closed in ``cleanup_ctx``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from instastore.config import Settings
from instastore.server.keys import SETTINGS, STORES
from instastore.server.problems import problem_middleware
from instastore.server.routes import setup_routes
from instastore.storage import open_stores

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[problem_middleware])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_stores)
    setup_routes(app)
    return app


async def _stores(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    stores = await open_stores(settings)
    log.info("stores open: metadata=%s blobs=%s", stores.metadata.name, stores.blobs.name)
    app[STORES] = stores
    yield
    await stores.close()


def run(settings: Settings) -> None:
    log.info("starting instastore on http://%s:%d with %r", settings.host, settings.port, settings)
    web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log=None, print=None)
