"""Upload, read, delete and restore photos and videos; a user's photos; likes and
likers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from instastore.server import views
from instastore.server.handlers.common import (
    cursor,
    limit,
    photo_id,
    require_user,
    services,
    viewer,
)
from instastore.server.handlers.operation import (
    IDEMPOTENCY_KEY,
    PAGE_PARAMS,
    PHOTO_ID,
    USERNAME_PARAM,
    Operation,
    declare,
    obj,
    ok,
    parse_header,
    required_text,
)
from instastore.server.keys import SETTINGS
from instastore.server.openapi import VISIBILITIES, problem_response

from instastore.errors import InvalidInput, TooLarge
from instastore.limits import MAX_IDEMPOTENCY_KEY
from instastore.uploads import check_idempotency_key, check_title, check_visibility, receive

MAX_FIELD_BYTES = 4096  # title and visibility form fields
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file, in bytes
UPLOAD_CHUNK = 256 * 1024
UPLOAD_FORM = obj(
    {
        "file": {
            "type": "string",
            "format": "binary",
            "contentMediaType": "application/octet-stream",
            "minLength": 1,
            "description": "the image or video; not empty",
        },
        "title": required_text("max_title_chars"),
        "visibility": {"enum": list(VISIBILITIES), "description": "public unless given"},
    },
    ("file", "title"),
)


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(UPLOAD_CHUNK):
        yield chunk


async def _small_field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(MAX_FIELD_BYTES):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise InvalidInput(f"form field {part.name!r} is over {MAX_FIELD_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"form field {part.name!r} is not UTF-8") from exc


def _at_most(fields: dict[str, str], name: str, most: int) -> str | None:
    """The field as sent, refused past ``most`` characters before any trimming (the bound
    the spec states)."""
    value = fields.get(name)
    if value is not None and len(value) > most:
        raise InvalidInput(f"{name} is {len(value)} characters; the limit is {most}")
    return value


@declare(
    Operation(
        "uploadPhoto",
        "photos",
        "Upload a photo or video",
        "A multipart form with the file, its title and its visibility. JPEG, PNG, GIF, WebP "
        "and the video types the service decodes; renditions are made before it answers. "
        "With an Idempotency-Key a retry answers the first upload's photo (200).",
        {
            "201": ok("the new photo", "Photo"),
            "200": ok("the photo of the first upload with this Idempotency-Key", "Photo"),
        },
        ("409", "413", "415", "422", "429", "451"),
        params=(IDEMPOTENCY_KEY,),
        body={"multipart/form-data": {"schema": UPLOAD_FORM}},
        special={
            "409": problem_response(
                "409",
                "an upload with this Idempotency-Key is still in progress",
                ("Retry-After",),
            ),
            "503": problem_response(
                "503",
                "a store cannot be reached, or the server sheds load: connections, or "
                "uploads past the decoding queue (decode_threads + decode_queue); retry "
                "after Retry-After seconds",
            ),
        },
    )
)
async def upload(request: web.Request) -> web.Response:
    user = require_user(request)
    settings = request.app[SETTINGS]
    svc = services(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidInput("send multipart/form-data with a 'file' part and a 'title' field")
    if (
        request.content_length
        and request.content_length > settings.max_upload_bytes + MULTIPART_OVERHEAD
    ):
        raise TooLarge(f"upload is over the limit of {settings.max_upload_bytes:,} bytes")
    key = check_idempotency_key(
        parse_header(
            request, IDEMPOTENCY_KEY, f"1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        )
    )
    await svc.upload_limiter.take(user.id, "uploads")  # shared by every host
    fields: dict[str, str] = {}
    received = None
    try:
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise InvalidInput("nested multipart bodies are not accepted")
                if part.name == "file":
                    if received is not None:
                        raise InvalidInput("send exactly one 'file' part")
                    received = await receive(
                        _part_chunks(part), settings.max_upload_bytes, svc.uploads.tmp_dir
                    )
                elif part.name in ("title", "visibility"):
                    fields[part.name] = await _small_field(part)
                else:
                    raise InvalidInput(
                        f"unexpected form field {part.name!r}; send file, title and visibility"
                    )
        except (ValueError, AssertionError) as exc:  # aiohttp's word for a malformed body
            raise InvalidInput(f"malformed multipart body: {exc}") from exc
        if received is None:
            raise InvalidInput("the 'file' part is missing")
        if received.size == 0:
            raise InvalidInput("the file is empty")
        title = check_title(
            _at_most(fields, "title", settings.max_title_chars), settings.max_title_chars
        )
        if fields.get("visibility", "public") not in VISIBILITIES:
            raise InvalidInput(f"visibility must be one of {', '.join(VISIBILITIES)}")
        visibility = check_visibility(fields.get("visibility"))
        photo, created = await svc.uploads.create(user, received, title, visibility, key)
    finally:
        if received is not None:
            await asyncio.to_thread(received.discard)
    card = await svc.viewing.uploaded(user, photo, created)
    return views.json(views.photo_json(card), status=201 if created else 200)


@declare(
    Operation(
        "getPhoto",
        "photos",
        "A photo's metadata and media URLs",
        "The photo as this viewer may see it; a photo hidden from the viewer is a 404 like "
        "a missing one.",
        {"200": ok("the photo", "Photo")},
        ("404",),
        auth=False,
        params=(PHOTO_ID,),
    )
)
async def get_photo(request: web.Request) -> web.Response:
    card = await services(request).viewing.card(viewer(request), photo_id(request))
    return views.json(views.photo_json(card))


@declare(
    Operation(
        "deletePhoto",
        "photos",
        "Soft delete (owner only)",
        "The photo disappears at once and can be restored within the retention window.",
        {"204": ok("deleted; restorable for a while")},
        ("403", "404"),
        params=(PHOTO_ID,),
    )
)
async def delete_photo(request: web.Request) -> web.Response:
    user = require_user(request)
    # SECURITY: a photo the caller cannot see is 404 like a missing one, never 403.
    await services(request).viewing.delete(user, photo_id(request))
    return web.Response(status=204)


@declare(
    Operation(
        "restorePhoto",
        "photos",
        "Undo a delete",
        "Within the retention window (retention_days); after it, 410.",
        {"200": ok("the photo", "Photo")},
        ("404", "410"),
        params=(PHOTO_ID,),
    )
)
async def restore_photo(request: web.Request) -> web.Response:
    user = require_user(request)
    card = await services(request).viewing.restore(user, photo_id(request))
    return views.json(views.photo_json(card))


@declare(
    Operation(
        "listUserPhotos",
        "photos",
        "A user's photos",
        "The photos this viewer may see, newest first.",
        {"200": ok("a page of photos", "PhotoPage")},
        ("404",),
        auth=False,
        params=(USERNAME_PARAM, *PAGE_PARAMS),
    )
)
async def user_photos(request: web.Request) -> web.Response:
    page = await services(request).viewing.user_photos(
        viewer(request), request.match_info["username"], cursor(request), limit(request)
    )
    return views.json(views.photos_page_json(page))


async def _set_like(request: web.Request, liked: bool) -> web.Response:
    user = require_user(request)
    likes = await services(request).viewing.set_like(user, photo_id(request), liked)
    return views.json({"liked": liked, "likes": likes})


@declare(
    Operation(
        "likePhoto",
        "photos",
        "Like",
        "Idempotent: liking twice counts once.",
        {"200": ok("liked", "LikeState")},
        ("404",),
        params=(PHOTO_ID,),
    )
)
async def like(request: web.Request) -> web.Response:
    return await _set_like(request, True)


@declare(
    Operation(
        "unlikePhoto",
        "photos",
        "Unlike",
        "Idempotent: unliking a photo not liked changes nothing.",
        {"200": ok("not liked", "LikeState")},
        ("404",),
        params=(PHOTO_ID,),
    )
)
async def unlike(request: web.Request) -> web.Response:
    return await _set_like(request, False)


@declare(
    Operation(
        "listLikers",
        "photos",
        "Who likes a photo",
        "In id order, paged; 404 when the photo is missing or hidden from the viewer.",
        {"200": ok("a page of users", "UserPage")},
        ("404",),
        auth=False,
        params=(PHOTO_ID, *PAGE_PARAMS),
    )
)
async def likers(request: web.Request) -> web.Response:
    page = await services(request).viewing.likers(
        viewer(request), photo_id(request), cursor(request), limit(request)
    )
    return views.json(views.page_json([views.user_json(u) for u in page.items], page))
