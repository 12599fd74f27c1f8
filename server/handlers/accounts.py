"""Sign up, sessions (log in and out, list, revoke), passwords, the current user,
profiles."""

from __future__ import annotations

from aiohttp import web
from instastore.server import views
from instastore.server.handlers.common import (
    client_address,
    json_body,
    require_user,
    services,
    viewer,
)
from instastore.server.keys import SESSION

from instastore import ids
from instastore.errors import InvalidInput


async def sign_up(request: web.Request) -> web.Response:
    body = await json_body(request)
    user = await services(request).accounts.sign_up(
        body.get("username"),
        body.get("password"),
        body.get("display_name", ""),
        client_address(request),  # X-Forwarded-For only from trusted_proxies
    )
    return views.json(views.user_json(user), status=201)


async def log_in(request: web.Request) -> web.Response:
    body = await json_body(request)
    address = client_address(request)  # X-Forwarded-For only from trusted_proxies
    user, token = await services(request).accounts.log_in(
        body.get("username"), body.get("password"), address
    )
    return views.json({"token": token, "user": views.user_json(user)}, status=201)


async def log_out(request: web.Request) -> web.Response:
    require_user(request)
    await services(request).accounts.log_out(request[SESSION])
    return web.Response(status=204)


async def my_sessions(request: web.Request) -> web.Response:
    user = require_user(request)
    sessions = await services(request).accounts.sessions(user)
    current = request[SESSION]
    return views.json({"items": [views.session_json(s, current) for s in sessions]})


async def revoke_session(request: web.Request) -> web.Response:
    user = require_user(request)
    session_id = ids.parse_id(request.match_info["session_id"], "session id")
    await services(request).accounts.revoke(user, session_id)
    return web.Response(status=204)


async def log_out_everywhere(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).accounts.log_out_everywhere(user)
    return web.Response(status=204)


async def change_password(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await json_body(request)
    unknown = set(body) - {"password", "new_password"}
    if unknown:
        raise InvalidInput(
            f"unknown fields: {', '.join(sorted(unknown))}; PUT takes password and new_password"
        )
    await services(request).accounts.change_password(
        user,
        request[SESSION],
        body.get("password"),
        body.get("new_password"),
        client_address(request),  # X-Forwarded-For only from trusted_proxies
    )
    return web.Response(status=204)


async def me(request: web.Request) -> web.Response:
    user = require_user(request)
    profile = await services(request).accounts.profile(user.username)
    return views.json(views.profile_json(profile))


async def update_me(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await json_body(request)
    unknown = set(body) - {"display_name", "private"}
    if unknown:
        raise InvalidInput(
            f"unknown fields: {', '.join(sorted(unknown))}; PATCH takes display_name and private"
        )
    updated = await services(request).accounts.update(
        user, body.get("display_name"), body.get("private")
    )
    profile = await services(request).accounts.profile(updated.username)
    return views.json(views.profile_json(profile))


async def profile(request: web.Request) -> web.Response:
    """A profile with counts; with a token, also whether I follow them or asked to."""
    found, relation = await services(request).viewing.profile(
        viewer(request), request.match_info["username"]
    )
    body = views.profile_json(found)
    if relation is not None:
        body["viewer"] = views.viewer_json(relation)
    return views.json(body)
