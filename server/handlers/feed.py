"""The home timeline and title search."""

from __future__ import annotations

from aiohttp import web
from instastore.server import views
from instastore.server.handlers.common import audience, cursor, limit, require_user, services
from instastore.server.handlers.photos import photos_json

from instastore.errors import InvalidInput
from instastore.limits import MAX_QUERY_CHARS


async def timeline(request: web.Request) -> web.Response:
    user = require_user(request)
    order = request.query.get("order", "top")
    if order not in ("top", "recent"):
        raise InvalidInput("order must be top or recent")
    page = await services(request).timeline.page(user, order, cursor(request), limit(request))
    return views.json(
        views.page_json(await photos_json(request, page.items, audience(request)), page)
    )


async def search(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    if not query.strip():
        raise InvalidInput("q is required: the words to find in titles")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q is over {MAX_QUERY_CHARS} characters")
    seen_by = audience(request)
    page = await services(request).photos.search(
        query, cursor(request), limit(request), seen_by.filter
    )
    return views.json(views.page_json(await photos_json(request, page.items, seen_by), page))
