"""Blocking accounts: block, unblock, list my blocks."""

from __future__ import annotations

from aiohttp import web
from instastore.server import views
from instastore.server.handlers.common import cursor, limit, require_user, services
from instastore.server.handlers.operation import (
    PAGE_PARAMS,
    USERNAME_PARAM,
    Operation,
    declare,
    ok,
)


@declare(
    Operation(
        "blockUser",
        "social",
        "Block an account",
        "Each of the two is then as missing to the other (photos, profile, lists, "
        "comments, search); the follows between them end both ways, and their follow "
        "requests. Idempotent. Blocking oneself is a 400; an account missing to the viewer "
        "(none of that name, or one that blocks the viewer) a 404.",
        {"204": ok("blocked")},
        ("404",),
        params=(USERNAME_PARAM,),
    )
)
async def block(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).blocks.block(user, request.match_info["username"])
    return web.Response(status=204)


@declare(
    Operation(
        "unblockUser",
        "social",
        "Unblock an account",
        "The follows the block ended stay ended. Idempotent: an account not blocked is no "
        "error; 404 for an account missing to the viewer.",
        {"204": ok("not blocked")},
        ("404",),
        params=(USERNAME_PARAM,),
    )
)
async def unblock(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).blocks.unblock(user, request.match_info["username"])
    return web.Response(status=204)


@declare(
    Operation(
        "listBlocks",
        "social",
        "The accounts I block",
        "In id order, paged.",
        {"200": ok("a page of users", "UserPage")},
        (),
        params=PAGE_PARAMS,
    )
)
async def my_blocks(request: web.Request) -> web.Response:
    user = require_user(request)
    page = await services(request).blocks.page(user, cursor(request), limit(request))
    return views.json(views.page_json([views.user_json(u) for u in page.items], page))
