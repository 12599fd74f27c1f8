"""Reporting a photo, a comment or an account to the operators."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from instastore.server.handlers.common import json_body, photo_id, require_user, services
from instastore.server.handlers.operation import (
    PHOTO_ID,
    USERNAME_PARAM,
    Field,
    Operation,
    TextPattern,
    declare,
    json_fields,
    ok,
    parse_id,
    path_id,
)
from instastore.server.handlers.operation import json_body as body_of

from instastore.moderation import MAX_NOTE_CHARS, REASONS

COMMENT_ID = path_id("comment_id", "comment")
REPORT = {
    "reason": Field(
        {"type": "string", "enum": list(REASONS)}, (str,), f"one of {', '.join(REASONS)}"
    ),
    "text": Field(
        {
            "type": "string",
            "maxLength": MAX_NOTE_CHARS,
            "pattern": TextPattern(required=False),
            "description": "optional words for the operators; checked as titles are",
        },
        (str,),
        "a string: why, in the reporter's words",
    ),
}
RULES = (
    "The reason is one of the enumerated ones; the optional text is trimmed, at most "
    f"{MAX_NOTE_CHARS} characters, without control or invisible formatting characters. "
    "Reporting the same thing again replaces the reason."
)


async def _report(request: web.Request) -> dict[str, Any]:
    body = await json_body(request)
    json_fields(body, REPORT, "POST")
    return body


@declare(
    Operation(
        "reportPhoto",
        "moderation",
        "Report a photo",
        f"A photo the viewer may see and does not own (404 as for a missing photo; 403 for "
        f"one's own). {RULES}",
        {"204": ok("reported")},
        ("403", "404"),
        params=(PHOTO_ID,),
        body=body_of(REPORT, ("reason",)),
    )
)
async def report_photo(request: web.Request) -> web.Response:
    user = require_user(request)
    wanted = photo_id(request)
    body = await _report(request)
    await services(request).reports.photo(user, wanted, body.get("reason"), body.get("text"))
    return web.Response(status=204)


@declare(
    Operation(
        "reportComment",
        "moderation",
        "Report a comment",
        "A comment the viewer is shown, not their own, on a photo they may see (404 as for "
        f"a missing photo or comment; 403 for one's own). {RULES}",
        {"204": ok("reported")},
        ("403", "404"),
        params=(PHOTO_ID, COMMENT_ID),
        body=body_of(REPORT, ("reason",)),
    )
)
async def report_comment(request: web.Request) -> web.Response:
    user = require_user(request)
    wanted = photo_id(request)
    comment_id = parse_id(request, COMMENT_ID, "comment id")
    body = await _report(request)
    await services(request).reports.comment(
        user, wanted, comment_id, body.get("reason"), body.get("text")
    )
    return web.Response(status=204)


@declare(
    Operation(
        "reportUser",
        "moderation",
        "Report an account",
        "Any account but one's own (403) and but one missing to the viewer (404: none of "
        f"that name, one hidden from the viewer by a block). {RULES}",
        {"204": ok("reported")},
        ("403", "404"),
        params=(USERNAME_PARAM,),
        body=body_of(REPORT, ("reason",)),
    )
)
async def report_user(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await _report(request)
    await services(request).reports.account(
        user, request.match_info["username"], body.get("reason"), body.get("text")
    )
    return web.Response(status=204)
