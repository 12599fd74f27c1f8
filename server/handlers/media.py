"""Media bytes: immutable URLs with a per-photo secret, ETags, conditional GET and
single byte ranges, streamed from the blob store in chunks; GET and HEAD.

The secret in the URL is the capability (as with Instagram's CDN URLs): the API hands
media URLs only to viewers allowed to see the photo, and a browser's <img> or <video>
can then load them without a bearer token. The original upload of a photo or video is
for its owner only and also needs the owner's token; viewers of a video get "video", a
copy with every metadata atom dropped (see ``instastore.media``).

Shared HTTP caches may keep media only while the photo is public and its owner's account
is public, decided at each request from the owner as the process knows it (its own
changes at once, other processes' within the owner cache's few seconds); otherwise the
response is ``private``.

A streamed body reads its first chunk before the status line goes out, so a store that
fails at once gives a clean 503 problem; a failure after the head has gone out aborts
the connection (the client sees a short body), never a second response inside the first.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import re

from aiohttp import web
from instastore.server.handlers.common import audience, services, viewer
from instastore.server.problems import problem

from instastore import ids, volumes
from instastore.errors import (
    InstastoreError,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    StorageError,
    Unavailable,
)
from instastore.model import Photo, Rendition, Visibility

log = logging.getLogger(__name__)

IMMUTABLE = "max-age=31536000, immutable"
MAX_RANGE_DIGITS = 19  # a byte offset past 2**63 is no offset of ours; also bounds int() work
# SECURITY: ASCII digits only (\d also matches other scripts' digits) and a whole-string match.
_RANGE = re.compile(rf"bytes=([0-9]{{0,{MAX_RANGE_DIGITS}}})-([0-9]{{0,{MAX_RANGE_DIGITS}}})")


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end inclusive) of a single satisfiable range; None to serve everything
    (no header, or one we do not do, like several ranges); "unsatisfiable" for 416."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
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


def _rendition(request: web.Request, photo: Photo) -> Rendition:
    name = request.match_info["name"]
    rendition = photo.rendition(name)
    if rendition is None:
        raise NotFound(f"photo {photo.id} has no {name!r} rendition")
    if name == "original":
        user = viewer(request)
        if user is None:
            raise NotAuthenticated(
                "the original upload is for its owner only: send the owner's bearer token"
            )
        if user.id != photo.owner_id:
            raise NotAllowed("the original upload is for its owner only")
    return rendition


async def _shared(request: web.Request, photo: Photo, rendition: Rendition) -> bool:
    """Whether shared caches may keep these bytes: a public photo of a public account."""
    if rendition.name == "original" or photo.visibility is not Visibility.PUBLIC:
        return False
    owner = await audience(request).owner(photo.owner_id)
    # SECURITY: the owner's current state, not the photo's alone (issue 10, item 12).
    return owner is not None and not owner.private


async def media(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    pid = ids.parse_id(request.match_info["photo_id"], "photo id")
    try:
        photo = await svc.photos.get_for_media(pid)
    except NotFound:
        photo = None
    # SECURITY: constant-time comparison of the URL's secret; a missing photo and a wrong
    # secret get the same answer, so a guessed id tells nothing (issue 10, item 13).
    if photo is None or not hmac.compare_digest(
        request.match_info["secret"].encode(), photo.secret.encode()
    ):
        raise NotFound(f"no media at {request.path}")
    rendition = _rendition(request, photo)
    etag = f'"{photo.id}-{rendition.name}"'
    shared = await _shared(request, photo, rendition)
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
        response = problem(
            416,
            "range-not-satisfiable",
            f"the Range is outside the {size:,} bytes of this rendition",
        )
        response.headers["Content-Range"] = f"bytes */{size}"
        return response
    if wanted is None:
        status, offset, length = 200, 0, size
    else:
        start, end = wanted
        status, offset, length = 206, start, end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if svc.photos.media.fits(size):
        return await _from_cache(request, photo, rendition, status, headers, offset, length)
    return await _streamed(request, rendition, status, headers, offset, length)


async def _from_cache(
    request, photo: Photo, rendition: Rendition, status, headers, offset, length
) -> web.Response:
    svc = services(request)
    cache_key = f"{photo.id}/{rendition.name}"
    data = svc.photos.media.get(cache_key)
    if data is None:
        try:
            data = b"".join(
                [c async for c in volumes.open_locator(svc.stores.blobs, rendition.locator)]
            )
        except InstastoreError as exc:
            raise _unreadable(rendition, exc) from exc
        if len(data) != rendition.size:  # a short blob is never cached nor served as whole
            raise _unreadable(rendition, StorageError(f"{len(data):,} of {rendition.size:,} bytes"))
        svc.photos.media.put(cache_key, data)
    # For HEAD aiohttp sends the Content-Length of this body, and not the body.
    return web.Response(status=status, headers=headers, body=data[offset : offset + length])


def _unreadable(rendition: Rendition, exc: InstastoreError) -> Unavailable:
    log.error("media %s could not be read: %s", rendition.locator, exc)
    return Unavailable(f"the {rendition.name} bytes cannot be read right now")


async def _streamed(
    request, rendition: Rendition, status, headers, offset, length
) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    if request.method == "HEAD" or not length:
        await response.prepare(request)
        await response.write_eof()
        return response
    blobs = services(request).stores.blobs
    opened = volumes.open_locator(blobs, rendition.locator, offset, length)
    async with contextlib.aclosing(opened) as chunks:
        try:
            first = await anext(chunks, b"")
        except InstastoreError as exc:
            raise _unreadable(rendition, exc) from exc  # nothing sent yet: a clean problem
        await response.prepare(request)
        sent = len(first)
        await response.write(first)
        try:
            async for chunk in chunks:
                sent += len(chunk)
                await response.write(chunk)
        except InstastoreError as exc:
            _abort(request, rendition, f"{exc} after {sent:,} of {length:,} bytes")
        if sent != length:
            _abort(request, rendition, f"the store gave {sent:,} of {length:,} bytes")
    await response.write_eof()
    return response


def _abort(request: web.Request, rendition: Rendition, why: str) -> None:
    """The head is out: the only honest end is a cut connection (the client sees the
    body fall short of Content-Length), never a second response written into the body."""
    log.error("media %s aborted mid-body: %s", rendition.locator, why)
    if request.transport is not None:
        request.transport.abort()
    raise ConnectionResetError(f"media body aborted: {why}")
