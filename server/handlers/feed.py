"""The home timeline and title search."""

from __future__ import annotations

from aiohttp import web
from instastore.server import views
from instastore.server.handlers.common import (
    client_address,
    cursor,
    limit,
    require_user,
    services,
    viewer,
)

from instastore.errors import InvalidInput
from instastore.limits import MAX_QUERY_CHARS


async def timeline(request: web.Request) -> web.Response:
    user = require_user(request)
    order = request.query.get("order", "top")
    if order not in ("top", "recent"):
        raise InvalidInput("order must be top or recent")
    page = await services(request).viewing.timeline_page(
        user, order, cursor(request), limit(request)
    )
    return views.json(views.photos_page_json(page))


async def search(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    if not query.strip():
        raise InvalidInput("q is required: the words to find in titles")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q is over {MAX_QUERY_CHARS} characters")
    page = await services(request).viewing.search(
        viewer(request),
        query,
        cursor(request),
        limit(request),
        client_address(request),  # X-Forwarded-For only from trusted_proxies
    )
    return views.json(views.photos_page_json(page))
