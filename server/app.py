"""The app factory: ``create_app(settings)`` builds the application; the stores and the
core services are made and closed in ``cleanup_ctx``. ``run`` serves it through
``server/guard.py``'s runner (timeouts, connection caps)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import secrets
import signal
from collections.abc import AsyncIterator

from aiohttp import web
from instastore.server.guard import GuardedRunner, Limits
from instastore.server.keys import SERVICES, SETTINGS, Services
from instastore.server.middleware import access_log_middleware, auth_middleware
from instastore.server.problems import problem_middleware
from instastore.server.routes import setup_routes
from instastore.server.web import security_headers, setup_web

from instastore import paging
from instastore.accounts import Accounts
from instastore.config import Settings
from instastore.errors import InstastoreError
from instastore.ids import IdGenerator
from instastore.jobs import remove_scratch
from instastore.photos import Photos
from instastore.ratelimit import RateLimiter
from instastore.social import Social
from instastore.storage import open_stores
from instastore.storage.ports import BlobStore
from instastore.timeline import Timeline
from instastore.uploads import Uploads

log = logging.getLogger(__name__)

START_CLEANUP_TIMEOUT_S = 10.0  # a slow store delays no start for long; gc finishes the job


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
    await _remove_scratch(stores.blobs, settings)
    # SECURITY: one cursor key for every worker and server of the deployment (issue 10).
    paging.use_key(await stores.keys.server_key("cursor", secrets.token_bytes(paging.KEY_BYTES)))
    ids = IdGenerator(settings.worker_id)
    photos = Photos(stores.photos, stores.search, settings)
    accounts = Accounts(stores.accounts, stores.photos, stores.graph, settings, ids)
    accounts.on_change = photos.users.drop
    app[SERVICES] = Services(
        stores=stores,
        accounts=accounts,
        photos=photos,
        social=Social(stores.accounts, stores.graph, settings.max_page_size),
        timeline=Timeline(
            stores.graph, stores.photos, stores.likes, stores.accounts, settings, photos
        ),
        uploads=Uploads(stores.claims, stores.photos, stores.blobs, settings, ids, photos),
        upload_limiter=RateLimiter(settings.uploads_per_minute),
    )
    yield
    accounts.close()
    await stores.close()


async def _remove_scratch(blobs: BlobStore, settings: Settings) -> None:
    """Temporary files that crashed processes left; a store that is down does not stop
    the start (gc removes them later)."""
    try:
        removed = await asyncio.wait_for(remove_scratch(blobs, settings), START_CLEANUP_TIMEOUT_S)
    except (InstastoreError, TimeoutError) as exc:
        log.warning("could not remove abandoned temporary files at start: %r", exc)
        return
    if removed:
        log.info("removed %d abandoned temporary file(s)", removed)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # optional: the service runs on asyncio's own loop too
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def make_runner(app: web.Application, **kwargs) -> GuardedRunner:
    """The runner the service serves ``app`` with (its protocol guards included); tests
    serve through it too, so they see what clients see."""
    settings = app[SETTINGS]
    kwargs.setdefault("keepalive_timeout", settings.idle_timeout)
    return GuardedRunner(app, Limits.from_settings(settings), **kwargs)


async def _serve(settings: Settings, reuse_port: bool) -> None:
    """Serve until cancelled; SIGINT and SIGTERM raise GracefulExit (handle_signals)."""
    runner = make_runner(create_app(settings), handle_signals=True, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(
            runner, settings.host, settings.port, reuse_port=reuse_port or None
        ).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _serve_one(settings: Settings, reuse_port: bool) -> None:
    """What ``web.run_app`` does, with the guarded runner (run_app takes no runner)."""
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(settings, reuse_port))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)  # runs runner.cleanup(): open requests finish
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


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
