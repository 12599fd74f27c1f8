"""Comments on a photo: add, list oldest first, delete."""

from __future__ import annotations

from aiohttp import web
from instastore.server import views
from instastore.server.handlers.common import (
    cursor,
    json_body,
    limit,
    photo_id,
    require_user,
    services,
    viewer,
)
from instastore.server.handlers.operation import (
    PAGE_PARAMS,
    PHOTO_ID,
    Field,
    Operation,
    declare,
    json_fields,
    ok,
    parse_id,
    path_id,
    required_text,
)
from instastore.server.handlers.operation import (
    json_body as body_of,
)

COMMENT_ID = path_id("comment_id", "comment")
TEXT = Field(required_text("max_comment_chars"), (str,), "a string: the comment")
ADD_COMMENT = {"text": TEXT}


@declare(
    Operation(
        "addComment",
        "comments",
        "Comment on a photo",
        "On a photo the viewer may see (404 as for a missing photo otherwise). The text is "
        "trimmed, not blank, at most max_comment_chars, without control or invisible "
        "formatting characters. Each user posts at most comments_per_minute (429).",
        {"201": ok("the comment", "Comment")},
        ("404", "429"),
        params=(PHOTO_ID,),
        body=body_of(ADD_COMMENT, ("text",)),
    )
)
async def add_comment(request: web.Request) -> web.Response:
    user = require_user(request)
    wanted = photo_id(request)
    body = await json_body(request)
    json_fields(body, ADD_COMMENT, "POST")
    card = await services(request).comments.add(user, wanted, body.get("text"))
    return views.json(views.comment_json(card), status=201)


@declare(
    Operation(
        "listComments",
        "comments",
        "A photo's comments",
        "Oldest first, paged; 404 when the photo is missing or hidden from the viewer.",
        {"200": ok("a page of comments", "CommentPage")},
        ("404",),
        auth=False,
        params=(PHOTO_ID, *PAGE_PARAMS),
    )
)
async def list_comments(request: web.Request) -> web.Response:
    page = await services(request).comments.page(
        viewer(request), photo_id(request), cursor(request), limit(request)
    )
    return views.json(views.page_json([views.comment_json(c) for c in page.items], page))


@declare(
    Operation(
        "deleteComment",
        "comments",
        "Delete a comment (its author or the photo's owner)",
        "Removed for good. 404 when the photo is missing or hidden from the viewer, or the "
        "comment is gone; 403 for a comment the viewer sees but neither wrote nor owns the "
        "photo of.",
        {"204": ok("deleted")},
        ("403", "404"),
        params=(PHOTO_ID, COMMENT_ID),
    )
)
async def delete_comment(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).comments.delete(
        user, photo_id(request), parse_id(request, COMMENT_ID, "comment id")
    )
    return web.Response(status=204)
