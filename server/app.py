"""The app factory: ``create_app(settings)`` builds the application; the core services
(``instastore.services.open_services``) are made and closed in ``cleanup_ctx``. ``run``
serves it through ``server/guard.py``'s runner (timeouts, connection caps)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import random
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator

from aiohttp import web
from instastore.server.guard import GuardedRunner, Limits
from instastore.server.handlers import ops
from instastore.server.handlers.ops import METRICS_ONLY
from instastore.server.keys import DRAINING, SERVICES, SETTINGS
from instastore.server.middleware import access_log_middleware, auth_middleware
from instastore.server.problems import problem_middleware
from instastore.server.routes import setup_routes
from instastore.server.web import security_headers, setup_web

from instastore import metrics
from instastore.config import Settings
from instastore.errors import InstastoreError
from instastore.limits import FANOUT_SWEEP_S
from instastore.services import open_services

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[access_log_middleware, security_headers, problem_middleware, auth_middleware],
        client_max_size=settings.max_json_bytes,  # JSON bodies; uploads stream past this
    )
    app[SETTINGS] = settings
    app.on_response_prepare.append(_close_when_draining)
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(_watch_loop_lag)
    app.cleanup_ctx.append(_sweep_fanouts)
    setup_routes(app)
    setup_web(app)
    return app


async def _close_when_draining(request: web.Request, response: web.StreamResponse) -> None:
    """While draining, every answer closes its connection: a balancer's kept-alive
    connection to this host is never reused for a request it would have to refuse."""
    draining = request.app.get(DRAINING)
    if draining is not None and draining.is_set():
        response.force_close()  # this end closes it after the answer...
        response.headers["Connection"] = "close"  # ...and says so (headers are made by now)


def metrics_app(settings: Settings) -> web.Application:
    """The separate /metrics listener's application (``metrics_port``): that route only."""
    app = web.Application(middlewares=[problem_middleware])
    app[SETTINGS] = settings
    app[METRICS_ONLY] = True
    app.router.add_get("/metrics", ops.metrics)
    return app


async def _watch_loop_lag(app: web.Application) -> AsyncIterator[None]:
    async for _ in metrics.watch_loop_lag():
        yield


async def _sweep_fanouts(app: web.Application) -> AsyncIterator[None]:
    """Finish, every FANOUT_SWEEP_S or so, the fan-outs crashed processes left queued."""

    async def sweep() -> None:
        while True:
            await asyncio.sleep(FANOUT_SWEEP_S * random.uniform(0.5, 1.5))
            try:
                await app[SERVICES].fanout.sweep()
            except InstastoreError as exc:
                log.warning("fan-out sweep failed (tried again later): %s", exc)

    task = asyncio.get_running_loop().create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _services(app: web.Application) -> AsyncIterator[None]:
    services = await open_services(app[SETTINGS])
    app[SERVICES] = services
    yield
    await services.close()


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
    """Serve until SIGTERM or SIGINT, then drain: /readyz answers 503 and every answer
    closes its connection (for ``drain_seconds``, while new connections are still
    taken, for balancers that poll readiness); then the listener closes (a balancer's
    next connection is refused and goes to another host), idle connections close, and
    requests in flight get ``shutdown_timeout`` seconds to finish."""
    app = create_app(settings)
    draining = app[DRAINING] = asyncio.Event()
    runner = make_runner(
        app, handle_signals=False, access_log=None, shutdown_timeout=settings.shutdown_timeout
    )
    await runner.setup()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, draining.set)
    extra: web.AppRunner | None = None
    try:
        await web.TCPSite(
            runner, settings.host, settings.port, reuse_port=reuse_port or None
        ).start()
        if settings.metrics_port:
            extra = web.AppRunner(metrics_app(settings), access_log=None)
            await extra.setup()
            await web.TCPSite(
                extra, settings.metrics_host, settings.metrics_port, reuse_port=reuse_port or None
            ).start()
            where = f"{settings.metrics_host}:{settings.metrics_port}"
            log.info("metrics on http://%s/metrics", where)
        await draining.wait()
        log.info(
            "draining: /readyz answers 503; closing the listener in %s s", settings.drain_seconds
        )
        await asyncio.sleep(settings.drain_seconds)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if extra is not None:
            await extra.cleanup()
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
    port (SO_REUSEPORT); each leases its own worker number for the ids it makes."""
    log.info("starting instastore on http://%s:%d with %r", settings.host, settings.port, settings)
    if settings.workers == 1:
        _serve_one(settings, reuse_port=False)
        return
    own_metrics_dir = None
    if not os.environ.get(metrics.MULTIPROC_ENV):
        # Before any worker imports prometheus-client: each writes its values to files
        # there, and /metrics on any worker adds them up (instastore/metrics.py).
        own_metrics_dir = tempfile.mkdtemp(prefix="instastore-metrics-")
        os.environ[metrics.MULTIPROC_ENV] = own_metrics_dir
    context = multiprocessing.get_context("spawn")
    fixed = settings.fixed_worker_id

    def worker(i: int) -> Settings:
        number = settings.worker_id if fixed is None else str(fixed + i)
        # transcode_workers is per host: the first process runs the transcode queue.
        transcodes = settings.transcode_workers if i == 0 else 0
        return dataclasses.replace(
            settings, worker_id=number, workers=1, transcode_workers=transcodes
        )

    children = [
        context.Process(
            target=_serve_one,
            args=(worker(i), True),
            name=f"instastore-worker-{i}",
        )
        for i in range(settings.workers)
    ]
    for child in children:
        child.start()

    def forward(signum, frame) -> None:
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGINT)  # aiohttp shuts down cleanly on SIGINT

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
        if child.pid is not None:
            metrics.worker_exited(child.pid)
    if own_metrics_dir is not None:
        shutil.rmtree(own_metrics_dir, ignore_errors=True)
        del os.environ[metrics.MULTIPROC_ENV]
    failed = [c.name for c in children if c.exitcode not in (0, -signal.SIGINT)]
    if failed:
        raise SystemExit(f"instastore: workers exited with errors: {', '.join(failed)}")
