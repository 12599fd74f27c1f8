"""Blocking accounts: block, unblock, list my blocks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from instastore.server import views
from instastore.server.handlers.common import cursor, limit, require_user, services
from instastore.server.handlers.operation import (
    PAGE_PARAMS,
    USERNAME_PARAM,
    Handler,
    Operation,
    declare,
    ok,
)

from instastore.blocks import Blocks
from instastore.model import User


def _blocking(
    operation_id: str,
    summary: str,
    description: str,
    done: str,
    change: Callable[[Blocks], Callable[[User, str], Awaitable[None]]],
) -> Handler:
    """The handler of a change to a block on the account the path names (204)."""

    @declare(
        Operation(
            operation_id,
            "social",
            summary,
            description,
            {"204": ok(done)},
            ("404",),
            params=(USERNAME_PARAM,),
        )
    )
    async def handler(request: web.Request) -> web.Response:
        user = require_user(request)
        await change(services(request).blocks)(user, request.match_info["username"])
        return web.Response(status=204)

    return handler


block = _blocking(
    "blockUser",
    "Block an account",
    "Each of the two is then as missing to the other (photos, profile, lists, "
    "comments, search); the follows between them end both ways, and their follow "
    "requests. Idempotent. Blocking oneself is a 400; an account missing to the viewer "
    "(none of that name, or one that blocks the viewer) a 404.",
    "blocked",
    lambda blocks: blocks.block,
)
unblock = _blocking(
    "unblockUser",
    "Unblock an account",
    "The follows the block ended stay ended. Idempotent: an account not blocked is no "
    "error; 404 for an account missing to the viewer.",
    "not blocked",
    lambda blocks: blocks.unblock,
)


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
