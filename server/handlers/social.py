"""Follow, unfollow, follower lists, follow requests."""

from __future__ import annotations

from aiohttp import web
from instastore.server import views
from instastore.server.handlers.common import cursor, limit, require_user, services, viewer
from instastore.server.handlers.operation import (
    PAGE_PARAMS,
    USERNAME_PARAM,
    Operation,
    declare,
    ok,
)


@declare(
    Operation(
        "follow",
        "social",
        "Follow",
        "A private account gets a request to approve; a public one is followed at once. "
        "Following oneself is a 400.",
        {"200": ok("the state", "FollowState")},
        ("404",),
        auth=True,
        params=(USERNAME_PARAM,),
    )
)
async def follow(request: web.Request) -> web.Response:
    user = require_user(request)
    state = await services(request).social.follow(user, request.match_info["username"])
    return views.json({"state": state}, status=200)


@declare(
    Operation(
        "unfollow",
        "social",
        "Unfollow or cancel a request",
        "Idempotent: not following already is no error.",
        {"204": ok("not following")},
        ("404",),
        auth=True,
        params=(USERNAME_PARAM,),
    )
)
async def unfollow(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).social.unfollow(user, request.match_info["username"])
    return web.Response(status=204)


@declare(
    Operation(
        "listFollowers",
        "social",
        "Who follows the user",
        "A private account's list is for its followers and itself only (403 for others); "
        "newest first.",
        {"200": ok("a page of users", "UserPage")},
        ("403", "404"),
        auth=False,
        params=(USERNAME_PARAM, *PAGE_PARAMS),
    )
)
async def followers(request: web.Request) -> web.Response:
    page = await services(request).social.followers(
        request.match_info["username"], cursor(request), limit(request), viewer(request)
    )
    return views.json(views.page_json([views.user_json(u) for u in page.items], page))


@declare(
    Operation(
        "listFollowing",
        "social",
        "Whom the user follows",
        "A private account's list is for its followers and itself only (403 for others); "
        "newest first.",
        {"200": ok("a page of users", "UserPage")},
        ("403", "404"),
        auth=False,
        params=(USERNAME_PARAM, *PAGE_PARAMS),
    )
)
async def following(request: web.Request) -> web.Response:
    page = await services(request).social.following(
        request.match_info["username"], cursor(request), limit(request), viewer(request)
    )
    return views.json(views.page_json([views.user_json(u) for u in page.items], page))


@declare(
    Operation(
        "listFollowRequests",
        "social",
        "Pending follow requests to me",
        "Who asked to follow my private account, newest first.",
        {"200": ok("requesters, newest first", "UserPage")},
        (),
        auth=True,
        params=PAGE_PARAMS,
    )
)
async def requests(request: web.Request) -> web.Response:
    user = require_user(request)
    page = await services(request).social.requests(user, cursor(request), limit(request))
    return views.json(views.page_json([views.user_json(u) for u in page.items], page))


@declare(
    Operation(
        "approveFollowRequest",
        "social",
        "Approve a follow request",
        "The requester becomes a follower; 404 when they did not ask.",
        {"200": ok("approved", "Approved")},
        ("404",),
        auth=True,
        params=(USERNAME_PARAM,),
    )
)
async def approve(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).social.approve(user, request.match_info["username"])
    return views.json({"state": "approved"})
