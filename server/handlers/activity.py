"""The activity inbox: what happened to me, newest first; how much I have not read;
marking it read."""

from __future__ import annotations

import re

from aiohttp import web
from instastore.server import views
from instastore.server.handlers.common import cursor, json_body, limit, require_user, services
from instastore.server.handlers.operation import (
    ID,
    PAGE_PARAMS,
    Field,
    Operation,
    declare,
    json_fields,
    ok,
)
from instastore.server.handlers.operation import (
    json_body as body_of,
)

from instastore import ids
from instastore.errors import InvalidInput

UP_TO = Field(
    {**ID, "description": "the newest event id the client showed; default: every event"},
    (str,),
    "an event id: a decimal string from 1 to 2^63-1",
)
MARK_READ = {"up_to": UP_TO}


@declare(
    Operation(
        "listActivity",
        "activity",
        "My activity inbox",
        "What happened to me, newest first, paged: likes of and comments on my photos, "
        "mentions of me, new followers, follow requests, my requests approved. Events about "
        "what I may no longer see (a deleted or hidden photo or comment, an undone like or "
        "follow, an account gone) are left out, so a page may hold fewer than asked.",
        {"200": ok("a page of events", "ActivityPage")},
        params=PAGE_PARAMS,
    )
)
async def list_activity(request: web.Request) -> web.Response:
    user = require_user(request)
    page = await services(request).activity.page(user, cursor(request), limit(request))
    return views.json(views.page_json([views.activity_json(c) for c in page.items], page))


@declare(
    Operation(
        "activityUnread",
        "activity",
        "How many events I have not read",
        "The events past my read mark that the inbox shows me, counted up to 99 ('more': "
        "there may be more).",
        {"200": ok("the unread count", "ActivityUnread")},
    )
)
async def unread(request: web.Request) -> web.Response:
    user = require_user(request)
    found = await services(request).activity.unread(user)
    return views.json({"unread": found.count, "more": found.more})


@declare(
    Operation(
        "markActivityRead",
        "activity",
        "Mark my inbox read",
        "Every event up to up_to (default: up to my newest) is read. The mark only rises and "
        "never passes my newest event; an up_to below it changes nothing.",
        {"200": ok("the mark after", "ActivityRead")},
        body=body_of(MARK_READ, ()),
    )
)
async def mark_read(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await json_body(request)
    json_fields(body, MARK_READ, "POST")
    raw = body.get("up_to")
    # The pattern the spec states (no leading zeros), then the range.
    if raw is not None and not re.fullmatch(ID["pattern"], raw):
        raise InvalidInput(f"up_to must be {UP_TO.rule}, not {raw!r:.60}")
    up_to = None if raw is None else ids.parse_id(raw, "up_to")
    mark = await services(request).activity.mark_read(user, up_to)
    found = await services(request).activity.unread(user)
    return views.json(
        {"read_up_to": str(mark) if mark else None, "unread": found.count, "more": found.more}
    )
