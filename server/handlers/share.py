"""Permalinks and oEmbed: ``GET /p/{photo_id}`` (the photo's page, with the Open Graph
and Twitter Card tags other platforms preview it by) and ``GET /oembed`` (oEmbed 1.0,
discoverable from the page).

Both show a photo as an anonymous viewer sees it, whoever asks: crawlers carry no
credentials, and a page that showed its caller's view would leak a private photo to any
cache between them. A photo a stranger may not see (a private account's, followers-only,
private, deleted) is the 404 of a missing id, through the same ``Viewing.card`` reads.

The public base URL is the ``public_url`` setting; unset, the request's own scheme and
Host stand in, and since a client chooses its Host, the answers are then ``private`` to
caches (a shared cache keyed on something other than that Host would hand a forged
canonical URL to everyone). Nothing else of the request shapes an answer (the token is
checked by the middleware, then ignored), so no ``Vary`` is needed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from aiohttp import web
from instastore.server.handlers.common import services
from instastore.server.handlers.operation import (
    JSON,
    PHOTO_ID,
    PROBLEM_JSON,
    Operation,
    Param,
    declare,
    parse_id,
    schema,
)
from instastore.server.keys import SETTINGS
from instastore.server.previews import PAGE_MAX_AGE_S, Preview, oembed, page_html
from instastore.server.problems import problem

from instastore.errors import InvalidInput, NotFound
from instastore.viewing import PhotoCard

MAX_URL_CHARS = 2048  # the longest URL browsers and crawlers agree on
MAX_EMBED_PX = 10**5  # no screen is wider; also bounds int() work
# A Host header we write into a page: a name, IPv4 or [IPv6] address, and a port.
# SECURITY: anything else could carry markup or a second URL into the canonical link.
HOST = re.compile(r"([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?", re.ASCII)
PERMALINK_PATH = re.compile(r"/p/([0-9]{1,19})/?")


def base_url(request: web.Request) -> str:
    """The public base URL: the ``public_url`` setting, else this request's own."""
    configured = request.app[SETTINGS].public_base
    if configured is not None:
        return configured
    host = request.host
    if not HOST.fullmatch(host):
        raise InvalidInput(
            f"the Host header {host[:60]!r} is not a host name and port "
            "(the public_url setting names the service's own)"
        )
    return f"{request.scheme}://{host}"


def cache_control(request: web.Request) -> str:
    shared = "public" if request.app[SETTINGS].public_base is not None else "private"
    return f"{shared}, max-age={PAGE_MAX_AGE_S}"


async def public_card(request: web.Request, photo_id: int) -> PhotoCard:
    # SECURITY: always the anonymous viewer, never the caller: what a crawler reads is
    # what a stranger may see, and a hidden photo is the 404 of a missing one.
    return await services(request).viewing.card(None, photo_id)


CACHE_HEADER = {
    "description": (
        f"public, max-age={PAGE_MAX_AGE_S} with the public_url setting; private otherwise "
        "(then the page names the request's own Host)"
    ),
    "required": True,
    "schema": {"type": "string", "pattern": "^(public|private), max-age=[0-9]+$"},
}


@declare(
    Operation(
        "getPermalink",
        "share",
        "A photo's public page",
        "Server-rendered HTML readable without script: the title, the author, the large "
        "rendition (a video's viewer-safe copy), share links, and the Open Graph and "
        "Twitter Card tags other platforms preview it by, with a link to its oEmbed "
        "document. Always the view of an anonymous viewer, whatever the token: a photo a "
        "stranger may not see is a 404 exactly as a missing id.",
        {
            "200": {
                "description": "the page",
                "headers": {"Cache-Control": CACHE_HEADER},
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        },
        ("404",),
        auth=False,
        params=(PHOTO_ID,),
    )
)
async def permalink(request: web.Request) -> web.Response:
    photo_id = parse_id(request, PHOTO_ID, "photo id")
    base = base_url(request)
    card = await public_card(request, photo_id)
    return web.Response(
        text=page_html(Preview(card, base)),
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": cache_control(request)},
    )


URL = Param(
    "url",
    "query",
    {"type": "string", "minLength": 1, "maxLength": MAX_URL_CHARS},
    "the permalink of a photo of this service (<public_url>/p/<id>); any other URL is a 404",
    required=True,
)
MAX_WIDTH, MAX_HEIGHT = (
    Param(
        name,
        "query",
        {"type": "integer", "minimum": 1, "maximum": MAX_EMBED_PX},
        f"the most pixels of {what} the embed may take",
    )
    for name, what in (("maxwidth", "width"), ("maxheight", "height"))
)
FORMAT = Param(
    "format",
    "query",
    {"enum": ["json", "xml"]},
    "json (the default); xml is not implemented: 501",
)


def parse_pixels(request: web.Request, param: Param) -> int | None:
    raw = param.raw(request)
    if raw is None:
        return None
    # ASCII digits only (int() takes other scripts' digits too), few enough to bound int().
    if not re.fullmatch("[0-9]{1,6}", raw) or not 1 <= int(raw) <= MAX_EMBED_PX:
        raise InvalidInput(f"{param.name} must be an integer from 1 to {MAX_EMBED_PX}")
    return int(raw)


def photo_of(url: str, base: str) -> int:
    """The photo id of one of our permalinks (http or https, any query or fragment);
    ``NotFound`` for any other URL."""
    ours = urlsplit(base)
    try:
        theirs = urlsplit(url)
        port, our_port = theirs.port, ours.port
    except ValueError:
        port, our_port, theirs = None, None, None
    found = None
    if (
        theirs is not None
        and theirs.scheme.lower() in ("http", "https")
        and (theirs.hostname or "") == (ours.hostname or "")
        and (port or 0) == (our_port or 0)
        and theirs.path.startswith(ours.path)
    ):
        found = PERMALINK_PATH.fullmatch(theirs.path[len(ours.path) :])
    if found is None or not PHOTO_ID.matches(found.group(1)):
        raise NotFound(f"{url[:100]!r} is not a photo page of this service")
    return int(found.group(1))


@declare(
    Operation(
        "oembed",
        "share",
        "The oEmbed document of a photo's page",
        "oEmbed 1.0 (oembed.com) for a URL /p/{photo_id} names: type photo (the largest "
        "rendition within maxwidth x maxheight), rich for a video (an HTML5 <video> of its "
        "viewer-safe copy, scaled to fit), or link when no rendition fits. As the page, the "
        "view of an anonymous viewer: a photo a stranger may not see is a 404 exactly as "
        "a missing id, and so is any URL that is not one of this service's photo pages.",
        {
            "200": {
                "description": "the oEmbed document",
                "headers": {"Cache-Control": CACHE_HEADER},
                "content": {JSON: {"schema": schema("OEmbed")}},
            }
        },
        ("404",),
        auth=False,
        params=(URL, MAX_WIDTH, MAX_HEIGHT, FORMAT),
        special={
            "501": {
                "description": "format=xml: only JSON is implemented (oEmbed 1.0, 2.3.5)",
                "content": {PROBLEM_JSON: {"schema": schema("Problem")}},
            }
        },
    )
)
async def oembed_document(request: web.Request) -> web.Response:
    url = URL.raw(request)
    if not url:
        raise InvalidInput("url is required: the page of a photo, <public_url>/p/<id>")
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"url must be at most {MAX_URL_CHARS} characters")
    max_width, max_height = parse_pixels(request, MAX_WIDTH), parse_pixels(request, MAX_HEIGHT)
    answer_format = FORMAT.raw(request) or "json"
    if answer_format not in FORMAT.value["enum"]:
        raise InvalidInput("format must be json (or xml, which is not implemented)")
    if answer_format == "xml":
        return problem(501, "not-implemented", "only format=json is implemented")
    base = base_url(request)
    card = await public_card(request, photo_of(url, base))
    response = web.json_response(oembed(Preview(card, base), max_width, max_height))
    response.headers["Cache-Control"] = cache_control(request)
    return response
