"""Hashtags: a tag's photos and tags by prefix; a photo's title edited by its owner."""

from __future__ import annotations

from aiohttp import web
from instastore.server import views
from instastore.server.handlers.common import (
    client_address,
    cursor,
    json_body,
    limit,
    photo_id,
    require_user,
    services,
    viewer,
)
from instastore.server.handlers.operation import (
    LIMIT,
    PAGE_PARAMS,
    PHOTO_ID,
    Field,
    Operation,
    Param,
    declare,
    json_fields,
    ok,
    required_text,
)
from instastore.server.handlers.operation import (
    json_body as body_of,
)

from instastore.limits import MAX_TAGS_LISTED, TAG_PREFIX_CHARS
from instastore.tags import PREFIX_PATTERN, TAG_PATTERN

TAG = Param(
    "tag",
    "path",
    {"type": "string", "pattern": TAG_PATTERN},
    "the tag, with or without its '#' (percent-encoded: %23), folded as search folds "
    "words; one that folds to no tag (digits alone, more than one word) has no photos",
)
PREFIX = Param(
    "prefix",
    "query",
    {"type": "string", "pattern": PREFIX_PATTERN},
    f"the start of a tag, with or without its '#': at least {TAG_PREFIX_CHARS} letters or "
    "digits; folded as search folds words",
    required=True,
)
TITLE = Field(required_text("max_title_chars"), (str,), "a string: the new title")
EDIT_PHOTO = {"title": TITLE}


@declare(
    Operation(
        "tagPhotos",
        "hashtags",
        "Photos of a tag",
        "Photos whose title has #tag, newest first: those this viewer may see, as search "
        "shows them. Tags are read from titles (not comments).",
        {"200": ok("a page of photos", "PhotoPage")},
        auth=False,
        params=(TAG, *PAGE_PARAMS),
    )
)
async def tag_photos(request: web.Request) -> web.Response:
    page = await services(request).tags.page(
        viewer(request), request.match_info["tag"], cursor(request), limit(request)
    )
    return views.json(views.photos_page_json(page))


@declare(
    Operation(
        "searchTags",
        "hashtags",
        "Tags that start with a prefix",
        f"In order, at most {MAX_TAGS_LISTED} (and at most limit), each one a tag with a "
        "photo this viewer may see among its newest; no counts. Without a token, searches "
        "are limited per client address (429).",
        {"200": ok("the tags", "TagList")},
        ("429",),
        auth=False,
        params=(PREFIX, LIMIT),
    )
)
async def search_tags(request: web.Request) -> web.Response:
    found = await services(request).tags.search(
        viewer(request),
        PREFIX.raw(request),
        limit(request),
        client_address(request),  # X-Forwarded-For only from trusted_proxies
    )
    return views.json({"tags": found})


@declare(
    Operation(
        "editPhoto",
        "photos",
        "Edit a photo's title (owner only)",
        "The title rules of an upload. Search and the tag pages follow the edit; accounts "
        "the new title newly mentions are told once. 404 for a photo the caller may not "
        "see, 403 for one they see but do not own.",
        {"200": ok("the photo", "Photo")},
        ("403", "404"),
        params=(PHOTO_ID,),
        body=body_of(EDIT_PHOTO, ("title",)),
    )
)
async def edit_photo(request: web.Request) -> web.Response:
    user = require_user(request)
    wanted = photo_id(request)
    body = await json_body(request)
    json_fields(body, EDIT_PHOTO, "PATCH")
    card = await services(request).tags.retitle(user, wanted, body.get("title"))
    return views.json(views.photo_json(card))
