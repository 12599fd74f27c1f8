"""The home timeline and title search."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

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
from instastore.server.handlers.operation import (
    PAGE_PARAMS,
    QUERY,
    Operation,
    Param,
    declare,
    ok,
    query_has_a_word,
)

from instastore.errors import InvalidInput
from instastore.limits import MAX_QUERY_CHARS, MAX_TERM_LENGTH, TOP_WINDOW

ORDERS = ("top", "recent")
ORDER = Param("order", "query", {"enum": list(ORDERS)}, "top (the default) or recent")


@declare(
    Operation(
        "timeline",
        "feed",
        "Photos of everyone I follow",
        f"top (the default): the newest {TOP_WINDOW} photos ranked by likes, then the older "
        "ones newest first; recent: newest first. Either walks to the oldest photo.",
        {"200": ok("a page", "PhotoPage")},
        params=(*PAGE_PARAMS, ORDER),
    )
)
async def timeline(request: web.Request) -> web.Response:
    user = require_user(request)
    order = request.query.get("order", "top")
    if order not in ORDERS:
        raise InvalidInput("order must be top or recent")
    page = await services(request).viewing.timeline_page(
        user, order, cursor(request), limit(request)
    )
    return views.json(views.photos_page_json(page))


@declare(
    Operation(
        "searchPhotos",
        "feed",
        "Photos whose titles have every word of q",
        "Newest first. One request reads a bounded share of the title index: a page may "
        "hold fewer items than limit, even none, and still carry a next_cursor. A word is "
        f"letters and digits, at most {MAX_TERM_LENGTH} of them: a q with none finds nothing. "
        "Without a token, searches are limited per client address (429).",
        {"200": ok("a page", "PhotoPage")},
        ("429",),
        auth=False,
        params=(*PAGE_PARAMS, QUERY),
    )
)
async def search(request: web.Request) -> web.Response:
    try:  # aiohttp decodes bytes that are not UTF-8 to U+FFFD: q would be words never sent
        unquote_to_bytes(request.rel_url.raw_query_string).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the query string is not percent-encoded UTF-8") from exc
    query = request.query.get("q", "")
    if not query_has_a_word(query):
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
