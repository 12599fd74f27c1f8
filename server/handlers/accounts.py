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
from instastore.server.handlers.operation import (
    SESSION_ID,
    USERNAME_PARAM,
    USERNAME_SCHEMA,
    Field,
    Operation,
    TextPattern,
    declare,
    json_fields,
    ok,
    parse_id,
)
from instastore.server.handlers.operation import (
    json_body as body_of,
)
from instastore.server.keys import SESSION
from instastore.server.openapi import problem_response

from instastore.limits import MAX_DISPLAY_NAME_CHARS, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS

PASSWORD = Field(
    {"type": "string", "minLength": MIN_PASSWORD_CHARS, "maxLength": MAX_PASSWORD_CHARS},
    (str,),
    f"{MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters",
)
LOGIN_NAME = Field({"type": "string"}, (str,), "a string")
LOGIN_PASSWORD = Field({"type": "string", "maxLength": MAX_PASSWORD_CHARS}, (str,), "a string")
USERNAME = Field(USERNAME_SCHEMA, (str,), "3-30 characters of a-z, 0-9, '_' and '.'")
DISPLAY_NAME = Field(
    {
        "type": "string",
        "maxLength": MAX_DISPLAY_NAME_CHARS,
        "pattern": TextPattern(required=False),
        "description": "trimmed; no control or invisible formatting characters",
    },
    (str,),
    f"a string of at most {MAX_DISPLAY_NAME_CHARS} characters",
)
PRIVATE = Field({"type": "boolean"}, (bool,), "true or false")
SIGN_UP = {"username": USERNAME, "password": PASSWORD, "display_name": DISPLAY_NAME}
LOG_IN = {"username": LOGIN_NAME, "password": LOGIN_PASSWORD}
UPDATE_ME = {"display_name": DISPLAY_NAME, "private": PRIVATE}
CHANGE_PASSWORD = {"password": LOGIN_PASSWORD, "new_password": PASSWORD}


@declare(
    Operation(
        "signUp",
        "accounts",
        "Sign up",
        "A new account, public until changed; log in next (POST /v1/sessions). Sign-ups "
        "are limited per client address (429).",
        {"201": ok("the new user", "User")},
        ("409", "429"),
        auth=False,
        body=body_of(SIGN_UP, ("username", "password")),
        special={"409": problem_response("409", "the username is taken")},
    )
)
async def sign_up(request: web.Request) -> web.Response:
    body = await json_body(request)
    json_fields(body, SIGN_UP, "POST")
    user = await services(request).accounts.sign_up(
        body.get("username"),
        body.get("password"),
        body.get("display_name", ""),
        client_address(request),  # X-Forwarded-For only from trusted_proxies
    )
    return views.json(views.user_json(user), status=201)


@declare(
    Operation(
        "logIn",
        "sessions",
        "Log in: a bearer token",
        "A session and its bearer token for the username and password; failed log-ins "
        "are limited per address and per account (429).",
        {"201": ok("a session", "Session")},
        ("429",),
        auth=False,
        body=body_of(LOG_IN, ("username", "password")),
    )
)
async def log_in(request: web.Request) -> web.Response:
    body = await json_body(request)
    address = client_address(request)  # X-Forwarded-For only from trusted_proxies
    user, token = await services(request).accounts.log_in(
        body.get("username"), body.get("password"), address
    )
    return views.json({"token": token, "user": views.user_json(user)}, status=201)


@declare(
    Operation(
        "logOut",
        "sessions",
        "Log out",
        "Revokes the token of this request; other sessions stay.",
        {"204": ok("the token is revoked")},
    )
)
async def log_out(request: web.Request) -> web.Response:
    require_user(request)
    await services(request).accounts.log_out(request[SESSION])
    return web.Response(status=204)


@declare(
    Operation(
        "listMySessions",
        "sessions",
        "My sessions",
        "My unexpired sessions, newest first: when each was made and last used, and from where.",
        {"200": ok("my unexpired sessions", "UserSessions")},
    )
)
async def my_sessions(request: web.Request) -> web.Response:
    user = require_user(request)
    sessions = await services(request).accounts.sessions(user)
    current = request[SESSION]
    return views.json({"items": [views.session_json(s, current) for s in sessions]})


@declare(
    Operation(
        "revokeSession",
        "sessions",
        "End one of my sessions",
        "Revokes the token of one of my sessions (an id from GET /v1/me/sessions).",
        {"204": ok("its token is revoked")},
        ("404",),
        params=(SESSION_ID,),
        special={"404": problem_response("404", "no session of mine has this id")},
    )
)
async def revoke_session(request: web.Request) -> web.Response:
    user = require_user(request)
    session_id = parse_id(request, SESSION_ID, "session id")
    await services(request).accounts.revoke(user, session_id)
    return web.Response(status=204)


@declare(
    Operation(
        "logOutEverywhere",
        "sessions",
        "Log out everywhere",
        "Every session of mine ends, this one too.",
        {"204": ok("every token of mine is revoked")},
    )
)
async def log_out_everywhere(request: web.Request) -> web.Response:
    user = require_user(request)
    await services(request).accounts.log_out_everywhere(user)
    return web.Response(status=204)


@declare(
    Operation(
        "changePassword",
        "accounts",
        "Change my password",
        "Needs the current password; every other session of mine ends.",
        {"204": ok("changed; this token still works, no other does")},
        ("403", "429"),
        body=body_of(CHANGE_PASSWORD, ("password", "new_password")),
        special={"403": problem_response("403", "the password is wrong")},
    )
)
async def change_password(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await json_body(request)
    json_fields(body, CHANGE_PASSWORD, "PUT")
    await services(request).accounts.change_password(
        user,
        request[SESSION],
        body.get("password"),
        body.get("new_password"),
        client_address(request),  # X-Forwarded-For only from trusted_proxies
    )
    return web.Response(status=204)


@declare(
    Operation(
        "getMe",
        "accounts",
        "My profile with counts",
        "The profile of the token's user, with every photo of mine counted.",
        {"200": ok("my profile", "Profile")},
    )
)
async def me(request: web.Request) -> web.Response:
    user = require_user(request)
    profile = await services(request).accounts.profile(user.username)
    return views.json(views.profile_json(profile))


@declare(
    Operation(
        "updateMe",
        "accounts",
        "Change display_name or private",
        "Either or both; a field given must be of its type (null is refused). A private "
        "account's photos and lists are for its followers.",
        {"200": ok("my profile", "Profile")},
        body=body_of(UPDATE_ME, ()),
    )
)
async def update_me(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await json_body(request)
    json_fields(body, UPDATE_ME, "PATCH")
    updated = await services(request).accounts.update(
        user, body.get("display_name"), body.get("private")
    )
    profile = await services(request).accounts.profile(updated.username)
    return views.json(views.profile_json(profile))


@declare(
    Operation(
        "getProfile",
        "accounts",
        "A profile with counts",
        "With a token, also whether I follow them or asked to; the photo count is of the "
        "photos the viewer may see.",
        {"200": ok("the profile", "Profile")},
        ("404",),
        auth=False,
        params=(USERNAME_PARAM,),
    )
)
async def profile(request: web.Request) -> web.Response:
    """A profile with counts; with a token, also whether I follow them or asked to."""
    found, relation = await services(request).viewing.profile(
        viewer(request), request.match_info["username"]
    )
    body = views.profile_json(found)
    if relation is not None:
        body["viewer"] = views.viewer_json(relation)
    return views.json(body)
