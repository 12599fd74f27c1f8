"""Media bytes: immutable URLs with a per-photo secret, ETags, conditional GET and
single byte ranges, streamed from the blob store in chunks.

The secret in the URL is the capability (as with Instagram's CDN URLs): the API hands
media URLs only to viewers allowed to see the photo, and a browser's <img> or <video>
can then load them without a bearer token. The original upload of a photo is for its
owner only and also needs the owner's token.
"""

from __future__ import annotations

import hmac
import re

from aiohttp import web

from instastore import ids
from instastore.errors import NotAllowed, NotAuthenticated, NotFound
from instastore.model import Kind, Visibility
from instastore.server.handlers.common import services, viewer

IMMUTABLE = "max-age=31536000, immutable"
_RANGE = re.compile(r"^bytes=([0-9]{0,18})-([0-9]{0,18})$")  # ASCII digits; past 10**18 bytes: ignored


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive) of a single satisfiable range; None to serve everything
    (no header, or one we do not do, like several ranges); "unsatisfiable" for 416."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match:
        return None  # several ranges or another unit: the whole body is a valid answer
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


async def media(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    pid = ids.parse_id(request.match_info["photo_id"], "photo id")
    photo = await svc.photos.get_for_media(pid)
    # SECURITY: constant-time comparison of the URL's secret.
    if not hmac.compare_digest(request.match_info["secret"].encode(), photo.secret.encode()):
        raise NotFound(f"no media at {request.path}")
    name = request.match_info["name"]
    stored_name = "original" if (name == "video" and photo.kind is Kind.VIDEO) else name
    rendition = photo.rendition(stored_name)
    if rendition is None or (name == "original" and photo.kind is Kind.VIDEO):
        raise NotFound(f"photo {pid} has no {name!r} rendition")
    if stored_name == "original" and photo.kind is Kind.PHOTO:
        user = viewer(request)
        if user is None:
            raise NotAuthenticated("the original upload is for its owner only: send the owner's bearer token")
        if user.id != photo.owner_id:
            raise NotAllowed("the original upload is for its owner only")

    etag = f'"{photo.id}-{stored_name}"'
    shared = photo.visibility is Visibility.PUBLIC and stored_name != "original"
    headers = {
        "ETag": etag,
        "Cache-Control": ("public, " if shared else "private, ") + IMMUTABLE,
        "Accept-Ranges": "bytes",
        "Content-Type": rendition.content_type,
        "X-Content-Type-Options": "nosniff",
    }
    if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers={k: headers[k] for k in ("ETag", "Cache-Control")})

    size = rendition.size
    wanted = parse_range(request.headers.get("Range"), size)
    if wanted == "unsatisfiable":
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}", **headers})
    if wanted is None:
        status, offset, length = 200, 0, size
    else:
        start, end = wanted
        status, offset, length = 206, start, end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    cache = svc.photos.media
    cache_key = f"{photo.id}/{stored_name}"
    if cache.fits(size):
        data = cache.get(cache_key)
        if data is None:
            data = b"".join([c async for c in svc.stores.blobs.open(rendition.locator)])
            cache.put(cache_key, data)
        body = b"" if request.method == "HEAD" else data[offset : offset + length]
        response = web.Response(status=status, headers=headers, body=body)
        if request.method == "HEAD":
            response.content_length = length
        return response
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    await response.prepare(request)
    if request.method != "HEAD" and length:
        async for chunk in svc.stores.blobs.open(rendition.locator, offset, length):
            await response.write(chunk)
    await response.write_eof()
    return response
