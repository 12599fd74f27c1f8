"""The app factory: ``create_app(settings)`` builds the application; the stores and the
core services are made and closed in ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import secrets
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from instastore import paging
from instastore.accounts import Accounts
from instastore.config import Settings
from instastore.ids import IdGenerator
from instastore.photos import Photos
from instastore.ratelimit import RateLimiter
from instastore.server.keys import SERVICES, SETTINGS, Services
from instastore.server.middleware import access_log_middleware, auth_middleware
from instastore.server.problems import problem_middleware
from instastore.server.routes import setup_routes
from instastore.server.web import security_headers, setup_web
from instastore.social import Social
from instastore.storage import open_stores
from instastore.timeline import Timeline
from instastore.uploads import Uploads

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[access_log_middleware, security_headers, problem_middleware, auth_middleware],
        client_max_size=settings.max_json_bytes,  # JSON bodies; uploads stream past this
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_services)
    setup_routes(app)
    setup_web(app)
    return app


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    stores = await open_stores(settings)
    log.info("stores open: metadata=%s blobs=%s", stores.metadata.name, stores.blobs.name)
    # SECURITY: one cursor key for every worker and server of the deployment (issue 10).
    paging.use_key(await stores.metadata.server_key("cursor", secrets.token_bytes(paging.KEY_BYTES)))
    ids = IdGenerator(settings.worker_id)
    photos = Photos(stores, settings)
    accounts = Accounts(stores, settings, ids)
    accounts.on_change = photos.users.drop
    app[SERVICES] = Services(
        stores=stores,
        accounts=accounts,
        photos=photos,
        social=Social(stores, settings.max_page_size),
        timeline=Timeline(stores, settings, photos),
        uploads=Uploads(stores, settings, ids, photos),
        upload_limiter=RateLimiter(settings.uploads_per_minute),
    )
    yield
    await stores.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # optional: the service runs on asyncio's own loop too
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve_one(settings: Settings, reuse_port: bool) -> None:
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    web.run_app(
        create_app(settings), host=settings.host, port=settings.port, access_log=None, print=None,
        reuse_port=reuse_port or None, loop=loop,
    )


def run(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM. With ``workers`` > 1, that many processes share the
    port (SO_REUSEPORT); each makes ids with its own worker number."""
    log.info("starting instastore on http://%s:%d with %r", settings.host, settings.port, settings)
    if settings.workers == 1:
        _serve_one(settings, reuse_port=False)
        return
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_serve_one,
            args=(dataclasses.replace(settings, worker_id=settings.worker_id + i, workers=1), True),
            name=f"instastore-worker-{i}",
        )
        for i in range(settings.workers)
    ]
    for child in children:
        child.start()

    def forward(signum, frame) -> None:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGINT)  # aiohttp shuts down cleanly on SIGINT

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    failed = [c.name for c in children if c.exitcode not in (0, -signal.SIGINT)]
    if failed:
        raise SystemExit(f"instastore: workers exited with errors: {', '.join(failed)}")
