"""Upload, read, delete and restore photos and videos; a user's photos; likes."""

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
from instastore.server.keys import SETTINGS

from instastore.errors import InvalidInput, TooLarge
from instastore.uploads import check_idempotency_key, check_title, check_visibility, receive

MAX_FIELD_BYTES = 4096  # title and visibility form fields
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file, in bytes
UPLOAD_CHUNK = 256 * 1024


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
    key = check_idempotency_key(request.headers.get("Idempotency-Key"))
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
        title = check_title(fields.get("title"), settings.max_title_chars)
        visibility = check_visibility(fields.get("visibility"))
        photo, created = await svc.uploads.create(user, received, title, visibility, key)
    finally:
        if received is not None:
            await asyncio.to_thread(received.discard)
    card = await svc.viewing.uploaded(user, photo, created)
    return views.json(views.photo_json(card), status=201 if created else 200)


async def get_photo(request: web.Request) -> web.Response:
    card = await services(request).viewing.card(viewer(request), photo_id(request))
    return views.json(views.photo_json(card))


async def delete_photo(request: web.Request) -> web.Response:
    user = require_user(request)
    # SECURITY: a photo the caller cannot see is 404 like a missing one, never 403 (issue 10).
    await services(request).viewing.delete(user, photo_id(request))
    return web.Response(status=204)


async def restore_photo(request: web.Request) -> web.Response:
    user = require_user(request)
    card = await services(request).viewing.restore(user, photo_id(request))
    return views.json(views.photo_json(card))


async def user_photos(request: web.Request) -> web.Response:
    page = await services(request).viewing.user_photos(
        viewer(request), request.match_info["username"], cursor(request), limit(request)
    )
    return views.json(views.photos_page_json(page))


async def _set_like(request: web.Request, liked: bool) -> web.Response:
    user = require_user(request)
    likes = await services(request).viewing.set_like(user, photo_id(request), liked)
    return views.json({"liked": liked, "likes": likes})


async def like(request: web.Request) -> web.Response:
    return await _set_like(request, True)


async def unlike(request: web.Request) -> web.Response:
    return await _set_like(request, False)
