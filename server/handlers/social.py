"""Follow, unfollow, follower lists, follow requests (approve, decline), removing a
follower, and finding accounts by a username prefix."""

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
from instastore.server.handlers.operation import (
    PAGE_PARAMS,
    USERNAME_PARAM,
    Operation,
    Param,
    declare,
    ok,
)
from instastore.server.openapi import problem_response

from instastore.errors import InvalidInput
from instastore.limits import USERNAME_PREFIX_CHARS

USERNAME_PREFIX = Param(
    "q",
    "query",
    {
        "type": "string",
        "pattern": f"^[A-Za-z0-9_.]{{{USERNAME_PREFIX_CHARS},30}}$",
    },
    f"the first {USERNAME_PREFIX_CHARS} to 30 characters of a username (letters folded to "
    "lower case)",
    required=True,
)


@declare(
    Operation(
        "follow",
        "social",
        "Follow",
        "A private account gets a request to approve; a public one is followed at once. "
        "Following oneself is a 400; following (or asking to) while following "
        "max_following accounts already is a 409.",
        {"200": ok("the state", "FollowState")},
        ("404", "409"),
        auth=True,
        params=(USERNAME_PARAM,),
        special={"409": problem_response("409", "following max_following accounts already")},
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
        "The requester becomes a follower; 404 when they did not ask; 409 when they follow "
        "max_following accounts already (the request stays).",
        {"200": ok("approved", "Approved")},
        ("404", "409"),
        auth=True,
        params=(USERNAME_PARAM,),
        special={
            "409": problem_response(
                "409", "the requester follows max_following accounts already; the request stays"
            )
        },
    )
)
async def approve(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).social.approve(user, request.match_info["username"])
    return views.json({"state": "approved"})


@declare(
    Operation(
        "declineFollowRequest",
        "social",
        "Decline a follow request",
        "The request goes; the requester may ask again. 404 when they did not ask.",
        {"204": ok("declined")},
        ("404",),
        auth=True,
        params=(USERNAME_PARAM,),
    )
)
async def decline(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).social.decline(user, request.match_info["username"])
    return web.Response(status=204)


@declare(
    Operation(
        "removeFollower",
        "social",
        "Remove a follower",
        "Their follow ends (their timeline stops showing what only followers see). "
        "Idempotent: one who does not follow is no error; 404 for no such user.",
        {"204": ok("not following me")},
        ("404",),
        auth=True,
        params=(USERNAME_PARAM,),
    )
)
async def remove_follower(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).social.remove_follower(user, request.match_info["username"])
    return web.Response(status=204)


@declare(
    Operation(
        "searchUsers",
        "social",
        "Accounts whose username starts with q",
        "In username order, private accounts too (a profile names them to anyone). "
        "Without a token, searches are limited per client address (429).",
        {"200": ok("a page of users", "UserPage")},
        ("429",),
        auth=False,
        params=(*PAGE_PARAMS, USERNAME_PREFIX),
    )
)
async def search_users(request: web.Request) -> web.Response:
    prefix = USERNAME_PREFIX.raw(request)
    if prefix is None or not USERNAME_PREFIX.matches(prefix):
        raise InvalidInput(
            f"q must be the first {USERNAME_PREFIX_CHARS} to 30 characters of a username "
            "(a-z, 0-9, '_' and '.')"
        )
    page = await services(request).viewing.search_users(
        viewer(request),
        prefix,
        cursor(request),
        limit(request),
        client_address(request),  # X-Forwarded-For only from trusted_proxies
    )
    return views.json(views.page_json([views.user_json(u) for u in page.items], page))
