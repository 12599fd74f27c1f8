"""The one table from error class to HTTP status, and the one JSON error body.

Every error leaves the service as RFC 9457 problem details::

    {"type": "https://instastore.dev/problems/not-found", "title": "Not Found",
     "status": 404, "detail": "no photo 123"}

served as ``application/problem+json``. That holds for errors no handler raised too:
an unexpected exception (a 500 without internals, its traceback logged), a malformed
request body, and the answers the protocol layer (``server/guard.py``) gives before any
route runs, which use ``problem_bytes``.
"""

from __future__ import annotations

import http
import json
import logging

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from instastore import errors

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://instastore.dev/problems/"

# Most specific first: the first class an error is an instance of decides.
STATUS: list[tuple[type[errors.InstastoreError], int, str]] = [
    (errors.BadCursor, 400, "bad-cursor"),
    (errors.TooLarge, 413, "too-large"),
    (errors.UnsupportedMedia, 415, "unsupported-media-type"),
    (errors.InvalidMedia, 422, "invalid-media"),
    (errors.RequestTimeout, 408, "request-timeout"),
    (errors.InvalidInput, 400, "invalid-input"),
    (errors.NotAuthenticated, 401, "not-authenticated"),
    (errors.RateLimited, 429, "rate-limited"),
    (errors.Overloaded, 503, "overloaded"),
    (errors.NotAllowed, 403, "not-allowed"),
    (errors.Gone, 410, "gone"),
    (errors.NotFound, 404, "not-found"),
    (errors.Blocklisted, 451, "unavailable-for-legal-reasons"),
    (errors.LimitReached, 409, "limit-reached"),
    (errors.Conflict, 409, "conflict"),
    (errors.Unavailable, 503, "unavailable"),
    (errors.InstastoreError, 500, "internal"),
]


def _document(status: int, slug: str, detail: str, **extra: object) -> dict[str, object]:
    return {
        "type": PROBLEM_BASE + slug,
        "title": http.HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }


# Also on answers made outside the middlewares (aiohttp's own, the protocol guards).
PROBLEM_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def problem(status: int, slug: str, detail: str, **extra: object) -> web.Response:
    body = _document(status, slug, detail, **extra)
    return web.json_response(
        body, status=status, content_type="application/problem+json", headers=PROBLEM_HEADERS
    )


def problem_bytes(
    status: int, slug: str, detail: str, headers: dict[str, str] | None = None
) -> bytes:
    """A whole HTTP/1.1 response carrying a problem, ending the connection: for answers
    written straight to a socket, before (or instead of) reading a request."""
    body = json.dumps(_document(status, slug, detail)).encode()
    head = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "Content-Type: application/problem+json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in {**PROBLEM_HEADERS, **(headers or {})}.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def from_http_exception(exc: web.HTTPException) -> web.Response:
    """aiohttp's own error (404, 405, 413, ...) as a problem, keeping headers such as Allow."""
    slug = exc.reason.lower().replace(" ", "-")
    detail = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
    response = problem(exc.status, slug, detail)
    for name, value in exc.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def from_error(exc: errors.InstastoreError) -> web.Response:
    for cls, status, slug in STATUS:
        if isinstance(exc, cls):
            if status >= 500 and not isinstance(exc, errors.Overloaded):  # shedding is no fault
                log.error("request failed: %s", exc, exc_info=status == 500)
            response = problem(
                status, slug, str(exc) if status < 500 or status == 503 else "internal error"
            )
            if isinstance(exc, errors.NotAuthenticated):
                response.headers["WWW-Authenticate"] = 'Bearer realm="instastore"'
            if status == 503:
                response.headers["Retry-After"] = "5"
            if isinstance(exc, (errors.RateLimited, errors.Overloaded, errors.InProgress)):
                response.headers["Retry-After"] = str(exc.retry_after)
            if isinstance(exc, errors.RequestTimeout):
                response.force_close()  # the rest of the request is not coming
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
        return from_http_exception(exc)
    except RequestPayloadError as exc:  # a body aiohttp could not decode (chunks, gzip)
        return problem(400, "invalid-input", f"the request body is malformed: {exc}")
    except ConnectionError:  # the client went away: nobody to answer
        raise
    except Exception:  # the last resort: a bug, never a text/plain page with internals
        log.exception(
            "unexpected error in %s %s", request.method, request.match_info.route.resource
        )
        return problem(500, "internal", "internal error")
