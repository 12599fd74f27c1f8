"""Upload, read, delete and restore photos and videos; a user's photos; likes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from instastore.server import views
from instastore.server.handlers.common import (
    audience,
    cursor,
    limit,
    photo_id,
    require_user,
    services,
)
from instastore.server.keys import SETTINGS

from instastore.clock import utcnow
from instastore.errors import InvalidInput, NotFound, TooLarge
from instastore.model import Photo, User
from instastore.social import Audience
from instastore.uploads import check_idempotency_key, check_title, check_visibility, receive

MAX_FIELD_BYTES = 4096  # title and visibility form fields
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file, in bytes
UPLOAD_CHUNK = 256 * 1024


async def photos_json(request: web.Request, photos: list[Photo], seen_by: Audience) -> list[dict]:
    """Photos as JSON, with their like counts and owners (each distinct owner read once)."""
    owner_ids = list({p.owner_id for p in photos})
    likes, owners = await asyncio.gather(
        services(request).stores.likes.like_counts([p.id for p in photos]),
        asyncio.gather(*(seen_by.owner(o) for o in owner_ids)),
    )
    by_id = dict(zip(owner_ids, owners, strict=True))
    return [views.photo_json(p, seen_by.viewer, by_id[p.owner_id], likes[p.id]) for p in photos]


async def visible_photo(request: web.Request) -> tuple[Photo, Audience]:
    """The photo of the URL if this viewer may see it; NotFound otherwise (never
    telling a private photo from a missing one)."""
    pid = photo_id(request)
    photo = await services(request).photos.get(pid)
    seen_by = audience(request)
    if not await seen_by.can_see(photo):
        raise NotFound(f"no photo {pid}")
    return photo, seen_by


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
    svc.upload_limiter.take(user.id, "uploads")
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
        svc.timeline.note_photo(photo.owner_id, photo.id)
    finally:
        if received is not None:
            await asyncio.to_thread(received.discard)
    # A new photo has no likes; a replayed Idempotency-Key returns the first photo as it is now.
    likes = (await svc.stores.likes.like_counts([photo.id]))[photo.id] if not created else 0
    return views.json(views.photo_json(photo, user, user, likes), status=201 if created else 200)


async def get_photo(request: web.Request) -> web.Response:
    photo, audience = await visible_photo(request)
    (body,) = await photos_json(request, [photo], audience)
    return views.json(body)


async def delete_photo(request: web.Request) -> web.Response:
    user = require_user(request)
    # SECURITY: a photo the caller cannot see is 404 like a missing one, never 403 (issue 10).
    photo, _ = await visible_photo(request)
    await services(request).photos.delete(photo.id, user.id)
    return web.Response(status=204)


async def restore_photo(request: web.Request) -> web.Response:
    user = require_user(request)
    photo = await services(request).photos.restore(photo_id(request), user.id)
    (body,) = await photos_json(request, [photo], audience(request))
    return views.json(body)


async def user_photos(request: web.Request) -> web.Response:
    svc = services(request)
    owner: User = await svc.accounts.by_name(request.match_info["username"])
    seen_by = audience(request)
    page = await svc.photos.by_user(owner.id, cursor(request), limit(request), seen_by.filter)
    return views.json(views.page_json(await photos_json(request, page.items, seen_by), page))


async def _set_like(request: web.Request, liked: bool) -> web.Response:
    user = require_user(request)
    photo, _ = await visible_photo(request)
    store = services(request).stores.likes
    if liked:
        await store.like(photo.id, user.id, utcnow())
    else:
        await store.unlike(photo.id, user.id)
    likes = (await store.like_counts([photo.id]))[photo.id]
    return views.json({"liked": liked, "likes": likes})


async def like(request: web.Request) -> web.Response:
    return await _set_like(request, True)


async def unlike(request: web.Request) -> web.Response:
    return await _set_like(request, False)
