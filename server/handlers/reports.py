"""Reporting a photo, a comment or an account to the operators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from instastore.server.handlers.common import json_body, photo_id, require_user, services
from instastore.server.handlers.operation import (
    PHOTO_ID,
    USERNAME_PARAM,
    Field,
    Handler,
    Operation,
    Param,
    TextPattern,
    declare,
    json_fields,
    ok,
    parse_id,
    path_id,
)
from instastore.server.handlers.operation import json_body as body_of

from instastore.moderation import MAX_NOTE_CHARS, REASONS, Reports

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
    "Reporting the same thing again replaces the reason. Each user files at most "
    "reports_per_minute reports (429)."
)
# The item a report names, from the path (checked before the body is read).
Target = Callable[[web.Request], tuple[Any, ...]]
# The core's call for that kind of item: (viewer, *target, reason, text).
File = Callable[[Reports], Callable[..., Awaitable[None]]]


def _reporting(
    operation_id: str,
    summary: str,
    description: str,
    params: tuple[Param, ...],
    target: Target,
    file: File,
) -> Handler:
    """The handler of one kind of report: the same checks, body and answer for each."""

    @declare(
        Operation(
            operation_id,
            "moderation",
            summary,
            f"{description} {RULES}",
            {"204": ok("reported")},
            ("403", "404", "429"),
            params=params,
            body=body_of(REPORT, ("reason",)),
        )
    )
    async def report(request: web.Request) -> web.Response:
        user = require_user(request)
        item = target(request)
        body = await json_body(request)
        json_fields(body, REPORT, "POST")
        await file(services(request).reports)(user, *item, body.get("reason"), body.get("text"))
        return web.Response(status=204)

    return report


report_photo = _reporting(
    "reportPhoto",
    "Report a photo",
    "A photo the viewer may see and does not own (404 as for a missing photo; 403 for one's own).",
    (PHOTO_ID,),
    lambda request: (photo_id(request),),
    lambda reports: reports.photo,
)
report_comment = _reporting(
    "reportComment",
    "Report a comment",
    "A comment the viewer is shown, not their own, on a photo they may see (404 as for "
    "a missing photo or comment; 403 for one's own).",
    (PHOTO_ID, COMMENT_ID),
    lambda request: (photo_id(request), parse_id(request, COMMENT_ID, "comment id")),
    lambda reports: reports.comment,
)
report_user = _reporting(
    "reportUser",
    "Report an account",
    "Any account but one's own (403) and but one missing to the viewer (404: none of "
    "that name, one hidden from the viewer by a block).",
    (USERNAME_PARAM,),
    lambda request: (request.match_info["username"],),
    lambda reports: reports.account,
)
