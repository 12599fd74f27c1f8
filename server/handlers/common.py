"""What every handler needs: the services, the user, and parsing of common inputs."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from instastore import ids
from instastore.errors import InvalidInput, NotAuthenticated
from instastore.model import User
from instastore.server.keys import SERVICES, SETTINGS, USER, Services
from instastore.social import Audience


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def viewer(request: web.Request) -> User | None:
    return request[USER]


def audience(request: web.Request) -> Audience:
    """Who may see what, for this request's viewer, with the shared cache of owners."""
    svc = services(request)
    return Audience(svc.stores, viewer(request), svc.photos.users)


def require_user(request: web.Request) -> User:
    user = request[USER]
    if user is None:
        raise NotAuthenticated("this needs 'Authorization: Bearer <token>' (POST /v1/sessions gives one)")
    return user


def photo_id(request: web.Request) -> int:
    return ids.parse_id(request.match_info["photo_id"], "photo id")


def limit(request: web.Request, default: int = 20) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput("limit must be a positive integer")
    return min(int(raw), request.app[SETTINGS].max_page_size)


def cursor(request: web.Request) -> str | None:
    return request.query.get("cursor") or None


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise InvalidInput("send a JSON body with Content-Type: application/json")
    try:
        body = await request.json()
    except ValueError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body
