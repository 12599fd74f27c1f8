"""Request middleware: authentication, and the structured access log with the HTTP
metrics beside it."""

from __future__ import annotations

import functools
import json
import logging
import time

from aiohttp import web
from instastore.server.keys import SERVICES, SESSION, USER

from instastore import metrics
from instastore.errors import NotAuthenticated

access_log = logging.getLogger("instastore.access")
# Metric labels come from code, never from a client: any other method is "(other)".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Routes whose bearer token is not a user's: /metrics checks the metrics token itself.
OWN_TOKENS = frozenset({"/metrics"})
IN_FLIGHT = metrics.LoopCounter(metrics.HTTP_IN_FLIGHT)  # +1 and -1, folded with the rest


@web.middleware
async def auth_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Resolve ``Authorization: Bearer <token>`` to a user (or None) before the handler.
    A malformed or unknown token is an error even on public routes, so a client learns
    its token went bad rather than silently seeing less."""
    request[USER] = request[SESSION] = None
    header = request.headers.get("Authorization")
    resource = request.match_info.route.resource
    if header is not None and (resource is None or resource.canonical not in OWN_TOKENS):
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("Authorization must be 'Bearer <token>'")
        accounts = request.app[SERVICES].accounts
        request[USER], request[SESSION] = await accounts.authenticate(token.strip())
    return await handler(request)


@web.middleware
async def access_log_middleware(request: web.Request, handler) -> web.StreamResponse:
    """One JSON line per request: method, route template (never the raw path, which may
    carry media secrets), status, duration, user id. Never a token or password."""
    started = time.perf_counter()
    status = 500
    IN_FLIGHT.inc()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        IN_FLIGHT.inc(-1)
        seconds = time.perf_counter() - started
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "(unmatched)"
        method = request.method if request.method in KNOWN_METHODS else "(other)"
        counted, timed = _http_metrics(route, method, status)
        counted.inc()
        timed.observe(seconds)
        if access_log.isEnabledFor(logging.INFO):  # the line's JSON is built only if kept
            user = request.get(USER)
            access_log.info(
                json.dumps(
                    {
                        "method": request.method,
                        "route": route,
                        "status": status,
                        "ms": round(seconds * 1000, 2),
                        "user": str(user.id) if user is not None else None,
                    }
                )
            )


@functools.cache
def _http_metrics(
    route: str, method: str, status: int
) -> tuple[metrics.LoopCounter, metrics.LoopHistogram]:
    """The request counter and timer of a route, method and status, bound once (their
    ``labels()`` on every request was a few per cent of a hot media request) and counted
    without a lock (``metrics.LoopCounter``). Bounded: routes, methods and statuses all
    come from code."""
    return (
        metrics.LoopCounter(metrics.HTTP_REQUESTS.labels(route, method, str(status))),
        _timer(route, method),
    )


@functools.cache
def _timer(route: str, method: str) -> metrics.LoopHistogram:
    """One per route and method, whatever the status: two of them for one labelled child
    would each fold into it, which is right, but one is cheaper to fold."""
    return metrics.LoopHistogram(metrics.HTTP_SECONDS.labels(route, method))
