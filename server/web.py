"""The web page: static files shipped in the package, served at / and /static/; and the
security headers of every response (the page's own also on the photo pages, /p/).

The page is a client of the public /v1 API like any other (no private back door). Served
with a Content-Security-Policy that allows only this origin's scripts, styles, images,
media and API calls, so a title that carries markup cannot run as script even if it ever
reached the page unescaped (the page only sets text, never HTML).

Every response says ``X-Content-Type-Options: nosniff``; every JSON response (problem
documents included) ``Cache-Control: no-store``, since what the API answers depends on
the viewer's token or carries one. Media set their own Cache-Control.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

STATIC = Path(str(resources.files("instastore.server").joinpath("static")))
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC / "index.html", headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    )


JSON_TYPES = ("application/json", "application/problem+json")


@web.middleware
async def security_headers(request: web.Request, handler) -> web.StreamResponse:
    response = await handler(request)
    if response.prepared:  # streamed media: sent with their own headers
        return response
    if request.path == "/" or request.path.startswith(("/static/", "/p/")):
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
    # SECURITY: no content sniffing of anything we send (a title is never HTML).
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type in JSON_TYPES:
        # SECURITY: tokens and per-viewer answers must not sit in any cache, shared or not.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def setup_web(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, append_version=False)
