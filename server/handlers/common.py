"""What every handler needs: the services, the user, and parsing of common inputs."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from aiohttp import web
from instastore.server.guard import is_trusted
from instastore.server.handlers.operation import PHOTO_ID, parse_cursor, parse_id, parse_limit
from instastore.server.keys import SERVICES, SETTINGS, USER, Services

from instastore.errors import InvalidInput, NotAuthenticated
from instastore.model import User


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def client_address(request: web.Request) -> str:
    """The client's address: the TCP peer, or, when the peer is a proxy named in
    ``trusted_proxies``, the last address in X-Forwarded-For that is not one of them."""
    peer = request.remote or ""
    trusted = request.app[SETTINGS].trusted_networks
    # SECURITY: a forwarded header is believed only from a trusted proxy; anyone else
    # could name any address and so escape the per-address limits.
    if not is_trusted(peer, trusted):
        return peer
    forwarded = [
        a.strip() for h in request.headers.getall("X-Forwarded-For", []) for a in h.split(",")
    ]
    for address in reversed(forwarded):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return peer  # a malformed chain: the proxy's own address, as for no header
        if not is_trusted(address, trusted):
            return address
    return peer


def viewer(request: web.Request) -> User | None:
    return request[USER]


def require_user(request: web.Request) -> User:
    user = request[USER]
    if user is None:
        raise NotAuthenticated(
            "this needs 'Authorization: Bearer <token>' (POST /v1/sessions gives one)"
        )
    return user


def photo_id(request: web.Request) -> int:
    return parse_id(request, PHOTO_ID, "photo id")


def limit(request: web.Request, default: int = 20) -> int:
    return parse_limit(request, request.app[SETTINGS].max_page_size, default)


def cursor(request: web.Request) -> str | None:
    return parse_cursor(request)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object: UTF-8 (RFC 8259), no lone surrogates, not nested past
    Python's recursion limit; ``InvalidInput`` saying which rule it broke."""
    if request.content_type != "application/json":
        raise InvalidInput("send a JSON body with Content-Type: application/json")
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise InvalidInput(f"JSON is UTF-8: charset={request.charset!r:.40} is not accepted")
    raw = await request.read()
    try:
        body = json.loads(raw.decode("utf-8"))
        json.dumps(body, ensure_ascii=False).encode("utf-8")  # "\ud800" is JSON, not Unicode
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the body is not UTF-8: {exc}") from exc
    except UnicodeEncodeError as exc:
        lone = f"U+{ord(exc.object[exc.start]):04X}"
        raise InvalidInput(
            f"the body holds a lone surrogate ({lone}): strings must be valid Unicode"
        ) from exc
    except RecursionError as exc:
        raise InvalidInput("the body is nested too deeply") from exc
    except ValueError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body
