"""Follow, unfollow, follower lists, follow requests."""

from __future__ import annotations

from aiohttp import web
from instastore.server import views
from instastore.server.handlers.common import cursor, limit, require_user, services, viewer


async def follow(request: web.Request) -> web.Response:
    user = require_user(request)
    state = await services(request).social.follow(user, request.match_info["username"])
    return views.json({"state": state}, status=200)


async def unfollow(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).social.unfollow(user, request.match_info["username"])
    return web.Response(status=204)


async def followers(request: web.Request) -> web.Response:
    page = await services(request).social.followers(
        request.match_info["username"], cursor(request), limit(request), viewer(request)
    )
    return views.json(views.page_json([views.user_json(u) for u in page.items], page))


async def following(request: web.Request) -> web.Response:
    page = await services(request).social.following(
        request.match_info["username"], cursor(request), limit(request), viewer(request)
    )
    return views.json(views.page_json([views.user_json(u) for u in page.items], page))


async def requests(request: web.Request) -> web.Response:
    user = require_user(request)
    page = await services(request).social.requests(user, cursor(request), limit(request))
    return views.json(views.page_json([views.user_json(u) for u in page.items], page))


async def approve(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).social.approve(user, request.match_info["username"])
    return views.json({"state": "approved"})
