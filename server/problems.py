"""The one table from error class to HTTP status, and the one JSON error body.

Every error leaves the service as RFC 9457 problem details::

    {"type": "https://instastore.dev/problems/not-found", "title": "Not Found",
     "status": 404, "detail": "no photo 123"}

served as ``application/problem+json``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from instastore import errors

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://instastore.dev/problems/"

# Most specific first: the first class an error is an instance of decides.
STATUS: list[tuple[type[errors.InstastoreError], int, str]] = [
    (errors.BadCursor, 400, "bad-cursor"),
    (errors.TooLarge, 413, "too-large"),
    (errors.UnsupportedMedia, 415, "unsupported-media-type"),
    (errors.InvalidMedia, 422, "invalid-media"),
    (errors.InvalidInput, 400, "invalid-input"),
    (errors.NotAuthenticated, 401, "not-authenticated"),
    (errors.RateLimited, 429, "rate-limited"),
    (errors.NotAllowed, 403, "not-allowed"),
    (errors.Gone, 410, "gone"),
    (errors.NotFound, 404, "not-found"),
    (errors.Conflict, 409, "conflict"),
    (errors.Unavailable, 503, "unavailable"),
    (errors.InstastoreError, 500, "internal"),
]


def problem(status: int, slug: str, detail: str, **extra: object) -> web.Response:
    import http

    body = {
        "type": PROBLEM_BASE + slug,
        "title": http.HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return web.json_response(body, status=status, content_type="application/problem+json")


def from_error(exc: errors.InstastoreError) -> web.Response:
    for cls, status, slug in STATUS:
        if isinstance(exc, cls):
            if status >= 500:
                log.error("request failed: %s", exc, exc_info=status == 500)
            response = problem(status, slug, str(exc) if status < 500 or status == 503 else "internal error")
            if isinstance(exc, errors.RateLimited):
                response.headers["Retry-After"] = str(exc.retry_after)
            if isinstance(exc, errors.NotAuthenticated):
                response.headers["WWW-Authenticate"] = 'Bearer realm="instastore"'
            if status == 503:
                response.headers["Retry-After"] = "5"
            return response
    raise AssertionError("InstastoreError is in the table")


@web.middleware
async def problem_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.InstastoreError as exc:
        return from_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        slug = exc.reason.lower().replace(" ", "-")
        response = problem(exc.status, slug, exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason)
        if "Allow" in exc.headers:  # a 405 says which methods the URL takes (RFC 9110 15.5.6)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
