"""Media bytes over HTTP: ETags, conditional GET and single byte ranges, GET and HEAD.

What a media URL serves, and to whom, is the core's (``instastore.viewing``): the secret
in the URL is the capability (as with Instagram's CDN URLs), the API hands media URLs
only to viewers allowed to see the photo, and a browser's <img> or <video> can then load
them without a bearer token; the original upload is for its owner only and also needs
the owner's token; shared HTTP caches may keep media only while the photo is public and
its owner's account is public, else the response is ``private``; either kind for at
most ``MAX_AGE_S``, as a media URL stops working once its holder may no longer see the
photo (``Viewing.access``).

A streamed body reads its first chunk before the status line goes out, so a store that
fails at once gives a clean 503 problem; a failure after the head has gone out aborts
the connection (the client sees a short body), never a second response inside the first.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from dataclasses import dataclass

from aiohttp import web
from instastore.server.handlers.common import photo_id, services, viewer
from instastore.server.handlers.operation import PHOTO_ID, Operation, Param, declare, ref
from instastore.server.openapi import MEDIA_NAMES, problem_response
from instastore.server.problems import problem
from multidict import CIMultiDict

from instastore import metrics
from instastore.errors import InstastoreError
from instastore.model import Rendition
from instastore.viewing import MediaGrant, unreadable

log = logging.getLogger(__name__)

# An hour: what any cache, shared ones above all, may still serve of media after access
# to it was taken away (the URL itself stops working within seconds: instastore.viewing).
MAX_AGE_S = 3600
IMMUTABLE = f"max-age={MAX_AGE_S}, immutable"  # the bytes of a URL never change
MAX_RANGE_DIGITS = 19  # a byte offset past 2**63 is no offset of ours; also bounds int() work
# SECURITY: ASCII digits only (\d also matches other scripts' digits) and a whole-string match.
_RANGE = re.compile(rf"bytes=([0-9]{{0,{MAX_RANGE_DIGITS}}})-([0-9]{{0,{MAX_RANGE_DIGITS}}})")


FULL_HEADERS = ("ETag", "Cache-Control", "Accept-Ranges")


def _media(description: str, headers: tuple[str, ...]) -> dict:
    return {
        "description": description,
        "headers": {h: ref("headers", h) for h in headers},
        "content": {
            kind: {"schema": {"type": "string", "format": "binary", "contentMediaType": kind}}
            for kind in ("image/*", "video/*")
        },
    }


GET_MEDIA = Operation(
    "getMedia",
    "media",
    "Media bytes",
    "thumb, large, poster, video; original (the owner's token as well). ETag, 304, single "
    "byte ranges (206, 416). The URL is a capability the API hands to viewers allowed to "
    "see the photo; it stops working once they may not.",
    {
        "200": _media("the bytes", FULL_HEADERS),
        "206": _media("one byte range of them", (*FULL_HEADERS, "Content-Range")),
        "304": {
            "description": "not modified (If-None-Match matched); no body",
            "headers": {h: ref("headers", h) for h in ("ETag", "Cache-Control")},
        },
    },
    ("403", "404", "416"),
    auth=False,
    special={"416": problem_response("416")},
    params=(
        PHOTO_ID,
        Param(
            "secret",
            "path",
            {"type": "string"},
            "the photo's media secret, alone (a public photo of a public account) or bound "
            "to the viewer the URL was handed to: secret.viewer.tag",
        ),
        Param("name", "path", {"enum": list(MEDIA_NAMES)}, "the rendition"),
        Param(
            "Range",
            "header",
            {"type": "string"},
            "one byte range, bytes=first-last or bytes=-suffix; several, another unit or "
            "anything else is served whole",
        ),
        Param("If-None-Match", "header", {"type": "string"}, "ETags the client holds"),
    ),
)
# HEAD is derived from GET (server/openapi.py, head_of); only its names are its own.
HEAD_MEDIA = Operation(
    "headMedia", "media", "The headers of GET of the same media", "No body is sent.", {}
)


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


@dataclass(frozen=True, slots=True)
class Ready:
    """A rendition's answer, built once: its ETag, its headers (for 200, with
    Content-Length; for a range, without; for 304) and, for a small rendition held in
    memory, its bytes. Kept beside those bytes in the media cache (``Viewing.held``) for
    each Cache-Control it is served with, and dropped with them, so every GET and HEAD of
    a hot rendition after the first reuses it. Only what the rendition's key (photo,
    name, locator) and ``shared`` decide is in it: who may fetch it is decided anew for
    every request (``Viewing.media``) before it is looked up."""

    etag: str
    size: int
    whole: CIMultiDict[str]  # a 200's; aiohttp copies them into each response
    partial: CIMultiDict[str]  # the same without Content-Length (aiohttp sets it)
    not_modified: CIMultiDict[str]
    body: bytes | None

    @classmethod
    def build(cls, grant: MediaGrant, body: bytes | None) -> Ready:
        rendition = grant.rendition
        etag = f'"{grant.photo.id}-{rendition.name}"'
        cache_control = ("public, " if grant.shared else "private, ") + IMMUTABLE
        partial = CIMultiDict(
            {
                "ETag": etag,
                "Cache-Control": cache_control,
                "Accept-Ranges": "bytes",
                "Content-Type": rendition.content_type,
                "X-Content-Type-Options": "nosniff",
            }
        )
        whole = partial.copy()
        whole["Content-Length"] = str(rendition.size)
        return cls(
            etag,
            rendition.size,
            whole,
            partial,
            CIMultiDict({"ETag": etag, "Cache-Control": cache_control}),
            body,
        )


def _kept(grant: MediaGrant, data: bytes, beside: dict | None) -> Ready:
    """The ready answer kept beside ``data`` for this Cache-Control, built if none is."""
    ready = None if beside is None else beside.get(grant.shared)
    if ready is None:
        ready = Ready.build(grant, data)
        if beside is not None:
            beside[grant.shared] = ready
    return ready


@declare(HEAD_MEDIA, method="HEAD")
@declare(GET_MEDIA, method="GET")
async def media(request: web.Request) -> web.StreamResponse:
    viewing = services(request).viewing
    grant = await viewing.media(
        viewer(request),
        photo_id(request),
        request.match_info["secret"],
        request.match_info["name"],
    )
    held = viewing.held(grant)
    ready = Ready.build(grant, None) if held is None else _kept(grant, *held)
    matches = request.headers.get("If-None-Match")
    if matches and ready.etag in {t.strip() for t in matches.split(",")}:
        return web.Response(status=304, headers=ready.not_modified)

    size = ready.size
    asked = request.headers.get("Range")
    wanted = parse_range(asked, size) if asked else None
    if isinstance(wanted, str):  # "unsatisfiable"
        response = problem(
            416,
            "range-not-satisfiable",
            f"the Range is outside the {size:,} bytes of this rendition",
        )
        response.headers["Content-Range"] = f"bytes */{size}"
        return response
    if ready.body is None and viewing.in_memory(grant):
        ready = _kept(grant, *await viewing.fetched(grant))
    if wanted is None:
        status, offset, length = 200, 0, size
        headers = ready.whole
    else:
        start, end = wanted
        status, offset, length = 206, start, end - start + 1
        headers = ready.partial.copy()
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if ready.body is not None:
        if request.method != "HEAD":
            _media_bytes(grant.rendition.name, "buffered").inc(length)
        # For HEAD aiohttp sends the Content-Length of this body, and not the body.
        body = ready.body if status == 200 else ready.body[offset : offset + length]
        return web.Response(status=status, headers=headers, body=body)
    if status == 200:
        headers = ready.partial  # a streamed response's Content-Length is set below
    return await _streamed(request, grant, status, headers, offset, length)


async def _streamed(
    request: web.Request,
    grant: MediaGrant,
    status: int,
    headers: CIMultiDict[str],
    offset: int,
    length: int,
) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    if request.method == "HEAD" or not length:
        await response.prepare(request)
        await response.write_eof()
        return response
    rendition = grant.rendition
    chunks = services(request).viewing.chunks(grant, offset, length)
    async with contextlib.aclosing(chunks) as chunks:
        try:
            first = await anext(chunks, b"")
        except InstastoreError as exc:
            raise unreadable(rendition, exc) from exc  # nothing sent yet: a clean problem
        await response.prepare(request)
        sent = len(first)
        await response.write(first)
        try:
            async for chunk in chunks:
                sent += len(chunk)
                await response.write(chunk)
        except InstastoreError as exc:
            _abort(request, rendition, f"{exc} after {sent:,} of {length:,} bytes")
        finally:
            _media_bytes(rendition.name, "streamed").inc(sent)
        if sent != length:
            _abort(request, rendition, f"the store gave {sent:,} of {length:,} bytes")
    await response.write_eof()
    return response


@functools.cache
def _media_bytes(rendition: str, path: str) -> metrics.LoopCounter:
    """The bytes counter of a rendition name (from the stored record, bounded by the
    upload code) and path, bound once rather than by ``labels()`` per request, and counted
    without a lock."""
    return metrics.LoopCounter(metrics.MEDIA_BYTES.labels(rendition, path))


def _abort(request: web.Request, rendition: Rendition, why: str) -> None:
    """The head is out: the only honest end is a cut connection (the client sees the
    body fall short of Content-Length), never a second response written into the body."""
    log.error("media %s aborted mid-body: %s", rendition.locator, why)
    if request.transport is not None:
        request.transport.abort()
    raise ConnectionResetError(f"media body aborted: {why}")
