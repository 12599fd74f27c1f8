"""Request middleware: authentication and the structured access log."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web
from instastore.server.keys import SERVICES, USER

from instastore.errors import NotAuthenticated

access_log = logging.getLogger("instastore.access")


@web.middleware
async def auth_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Resolve ``Authorization: Bearer <token>`` to a user (or None) before the handler.
    A malformed or unknown token is an error even on public routes, so a client learns
    its token went bad rather than silently seeing less."""
    request[USER] = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("Authorization must be 'Bearer <token>'")
        request[USER] = await request.app[SERVICES].accounts.authenticate(token.strip())
    return await handler(request)


@web.middleware
async def access_log_middleware(request: web.Request, handler) -> web.StreamResponse:
    """One JSON line per request: method, route template (never the raw path, which may
    carry media secrets), status, duration, user id. Never a token or password."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.resource
        user = request.get(USER)
        access_log.info(
            json.dumps(
                {
                    "method": request.method,
                    "route": route.canonical if route is not None else "(unmatched)",
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "user": str(user.id) if user is not None else None,
                }
            )
        )
