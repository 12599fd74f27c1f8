"""The OpenAPI 3.1 description of the service, served at /openapi.json.

Written by hand to say what the routes mean: every operation has an operationId, every
status it can answer and a JSON Schema (2020-12) for every body it sends. It must never
promise less than the service does: ``tests/test_openapi.py`` keeps its operations equal
to ``routes.ROUTES`` and validates live responses against it, and
``tests/test_openapi_fuzz.py`` fuzzes every operation from it.

Statuses every operation can answer are declared on each: 400 (a request the service
cannot read, such as a header that is not UTF-8), 401 (a malformed or unknown bearer
token is an error on every route, public ones included, so a client learns its token
went bad), 500 and 503 (a store cannot be reached, or the server sheds connections).
"""

from __future__ import annotations

from typing import Any

from instastore import __version__
from instastore.limits import MAX_QUERY_CHARS, MAX_SESSIONS_LISTED

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"


def ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema(name: str) -> dict[str, str]:
    return ref("schemas", name)


ID = {
    "type": "string",
    "pattern": "^[0-9]{1,20}$",
    "description": "a 64-bit id as a decimal string",
}
TIME = {"type": "string", "format": "date-time"}
COUNT = {"type": "integer", "minimum": 0}
MEDIA_NAMES = ("thumb", "large", "poster", "video", "original")


def obj(
    properties: dict[str, Any], required: tuple[str, ...] | None = None, *, closed: bool = True
) -> dict[str, Any]:
    """An object schema; ``required`` defaults to every property. A closed object
    (the default for what the service sends) has no properties but these."""
    body: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
    }
    if closed:
        body["additionalProperties"] = False
    return body


def page(item: str) -> dict[str, Any]:
    return obj(
        {
            "items": {"type": "array", "items": schema(item)},
            "next_cursor": {
                "type": ["string", "null"],
                "description": (
                    "pass as cursor for the next page of this list, by the same reader; "
                    "null at the end (a page may hold fewer items than asked, or none, "
                    "and still have one)"
                ),
            },
        }
    )


SCHEMAS: dict[str, Any] = {
    "Problem": {
        "description": "RFC 9457 problem details; every error of every route is one",
        **obj(
            {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
            },
            closed=False,
        ),
    },
    "User": obj(
        {
            "id": ID,
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "private": {"type": "boolean"},
        }
    ),
    "Profile": obj(
        {
            "id": ID,
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "private": {"type": "boolean"},
            "created_at": TIME,
            "counts": obj(
                {
                    "photos": {
                        **COUNT,
                        "description": "the live photos the viewer may see (the owner: all)",
                    },
                    "followers": COUNT,
                    "following": COUNT,
                }
            ),
            "viewer": {
                "description": (
                    "with a token, for someone else's profile: whether I follow them or asked to"
                ),
                **obj({"following": {"type": "boolean"}, "requested": {"type": "boolean"}}),
            },
        },
        ("id", "username", "display_name", "private", "created_at", "counts"),
    ),
    "Photo": obj(
        {
            "id": ID,
            "owner": {
                "anyOf": [schema("User"), obj({"id": ID})],
                "description": "the owner; only the id if unknown",
            },
            "title": {"type": "string"},
            "kind": {"enum": ["photo", "video"]},
            "visibility": {"enum": ["public", "followers", "private"]},
            "created_at": TIME,
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "media": {
                "description": "media URLs this viewer may load (original: the owner's only)",
                **obj(
                    {name: {"type": "string", "pattern": "^/v1/media/"} for name in MEDIA_NAMES}, ()
                ),
            },
            "duration_s": {"type": "number", "minimum": 0, "description": "videos only"},
            "likes": COUNT,
            "deleted_at": {**TIME, "description": "set while the photo is deleted and restorable"},
        },
        ("id", "owner", "title", "kind", "visibility", "created_at", "width", "height", "media"),
    ),
    "PhotoPage": page("Photo"),
    "UserPage": page("User"),
    "Session": obj({"token": {"type": "string", "minLength": 1}, "user": schema("User")}),
    "UserSession": obj(
        {
            "id": ID,
            "created_at": TIME,
            "last_used_at": {
                **TIME,
                "description": "written at most once a minute, so up to a minute behind",
            },
            "expires_at": TIME,
            "address": {"type": "string", "description": "the client's when it logged in"},
            "current": {"type": "boolean", "description": "the session of this request's token"},
        }
    ),
    "UserSessions": obj(
        {
            "items": {
                "type": "array",
                "items": schema("UserSession"),
                "maxItems": MAX_SESSIONS_LISTED,
                "description": f"newest first; the newest {MAX_SESSIONS_LISTED}",
            }
        }
    ),
    "FollowState": obj({"state": {"enum": ["following", "requested"]}}),
    "Approved": obj({"state": {"const": "approved"}}),
    "LikeState": obj({"liked": {"type": "boolean"}, "likes": COUNT}),
    "Health": obj({"status": {"const": "ok"}, "version": {"type": "string"}}),
    "Readiness": obj(
        {
            "status": {"enum": ["ready", "unavailable"]},
            "checks": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "each backend (sqlite, files, cassandra, hdfs): ok, or why not",
            },
        }
    ),
    "OpenAPI": obj(
        {"openapi": {"type": "string"}, "info": {"type": "object"}, "paths": {"type": "object"}},
        ("openapi", "info", "paths"),
        closed=False,
    ),
}


def header(
    description: str, value: dict[str, Any] | None = None, *, required: bool = True
) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": value or {"type": "string"}}


HEADERS: dict[str, Any] = {
    "Retry-After": header(
        "seconds to wait before trying again", {"type": "string", "pattern": "^[0-9]+$"}
    ),
    "WWW-Authenticate": header("the Bearer scheme"),
    "Allow": header("the methods this URL takes"),
    "ETag": header("the rendition's entity tag"),
    "Cache-Control": header(
        "public only for public media of a public account; private otherwise; max-age=3600"
    ),
    "Content-Range": header("bytes first-last/size of a 206; bytes */size of a 416"),
    "Accept-Ranges": header("bytes", {"const": "bytes"}),
}

# Why each error status happens, where the reason is the same on every operation.
PROBLEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "400": (
        "invalid input: a bad id, limit, cursor, field or body; "
        "or a request the service cannot read",
        (),
    ),
    "401": (
        "no valid bearer token: missing where needed, "
        "or malformed, unknown or expired on any route",
        ("WWW-Authenticate",),
    ),
    "403": ("not allowed for this user", ()),
    "404": ("no such user, photo or media, or one this viewer may not see", ()),
    "405": ("this URL does not take that method", ("Allow",)),
    "408": ("the request body came too slowly", ()),
    "409": ("conflict", ()),
    "410": ("deleted and past its undelete window", ()),
    "413": ("the body is over its size limit", ()),
    "415": ("not an image or video type the service accepts", ()),
    "416": ("the Range is not satisfiable", ("Content-Range",)),
    "422": ("an accepted type whose bytes do not decode", ()),
    "429": ("too many requests; retry after Retry-After seconds", ("Retry-After",)),
    "500": ("internal error (logged)", ()),
    "503": (
        "a store cannot be reached, or the server sheds load; retry after Retry-After seconds",
        ("Retry-After",),
    ),
}


def problem_response(
    status: str, description: str | None = None, headers: tuple[str, ...] = ()
) -> dict[str, Any]:
    reason, declared = PROBLEMS[status]
    response: dict[str, Any] = {
        "description": description or reason,
        "content": {PROBLEM_JSON: {"schema": schema("Problem")}},
    }
    named = declared + headers
    if named:
        response["headers"] = {name: ref("headers", name) for name in named}
    return response


RESPONSES = {f"Problem{status}": problem_response(status) for status in PROBLEMS}
COMMON_ERRORS = ("400", "401", "500", "503")
BODY_ERRORS = ("408", "413")  # any operation that reads a request body


def ok(description: str, body: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if body:
        response["content"] = {JSON: {"schema": schema(body)}}
    return response


def op(
    operation_id: str,
    summary: str,
    success: dict[str, dict],
    errors: tuple[str, ...] = (),
    *,
    auth: bool = True,
    params: list | None = None,
    body: dict | None = None,
    special: dict[str, dict] | None = None,
) -> dict[str, Any]:
    """One operation: its successes, its errors (each a shared problem response unless
    ``special`` says otherwise) and the errors every operation can answer."""
    codes = set(COMMON_ERRORS) | set(errors) | (set(BODY_ERRORS) if body else set())
    responses = {
        **success,
        **{code: ref("responses", f"Problem{code}") for code in sorted(codes)},
        **(special or {}),
    }
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "security": [{"bearer": []}] if auth else [{}, {"bearer": []}],
        "responses": dict(sorted(responses.items())),
    }
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = {"required": True, "content": body}
    return operation


def json_body(properties: dict[str, Any], required: tuple[str, ...]) -> dict:
    return {JSON: {"schema": obj(properties, required)}}


def path_param(name: str, value: dict[str, Any] | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": value or {"type": "string"}}


def query_param(name: str, value: dict[str, Any], description: str, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": value,
        "description": description,
    }


def header_param(name: str, value: dict[str, Any], description: str) -> dict:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": value,
        "description": description,
    }


USERNAME = path_param("username", {"type": "string", "pattern": "^[a-z0-9_.]{3,30}$"})
PHOTO_ID = path_param("photo_id", ID)
PAGE_PARAMS = [
    query_param(
        "limit",
        {"type": "integer", "minimum": 1},
        "items per page; more than the page size is clamped",
    ),
    query_param(
        "cursor",
        {"type": "string"},
        "next_cursor of the previous page of this list; any other cursor is a 400",
    ),
]
CREDENTIALS = {
    "username": {"type": "string"},
    "password": {"type": "string", "minLength": 8, "maxLength": 1024},
}


def media_operation(operation_id: str, summary: str, *, head: bool) -> dict[str, Any]:
    """GET and HEAD of a media URL: the same statuses and headers; HEAD sends no body."""
    cached = ("ETag", "Cache-Control")
    full = ("ETag", "Cache-Control", "Accept-Ranges")
    bytes_ = {
        kind: {"schema": {"type": "string", "format": "binary", "contentMediaType": kind}}
        for kind in ("image/*", "video/*")
    }

    def media(description: str, headers: tuple[str, ...]) -> dict[str, Any]:
        response: dict[str, Any] = {
            "description": description,
            "headers": {h: ref("headers", h) for h in headers},
        }
        if not head:
            response["content"] = bytes_
        return response

    special = {"416": problem_response("416")}
    if head:
        special = {
            code: {k: v for k, v in problem_response(code).items() if k != "content"}
            for code in ("400", "401", "403", "404", "416", "500", "503")
        }
    return op(
        operation_id,
        summary,
        {
            "200": media("the bytes", full),
            "206": media("one byte range of them", (*full, "Content-Range")),
            "304": {
                "description": "not modified (If-None-Match matched); no body",
                "headers": {h: ref("headers", h) for h in cached},
            },
        },
        ("403", "404", "416"),
        auth=False,
        special=special,
        params=[
            PHOTO_ID,
            {
                **path_param("secret"),
                "description": "the photo's media secret, alone (a public photo of a public "
                "account) or bound to the viewer the URL was handed to: secret.viewer.tag",
            },
            path_param("name", {"enum": list(MEDIA_NAMES)}),
            header_param(
                "Range",
                {"type": "string", "pattern": "^bytes=[0-9]*-[0-9]*(,[0-9]*-[0-9]*)*$"},
                "one byte range; several, or another unit, are served whole",
            ),
            header_param("If-None-Match", {"type": "string"}, "ETags the client holds"),
        ],
    )


def paths() -> dict[str, Any]:
    username, photo = [USERNAME], [PHOTO_ID]
    return {
        "/healthz": {
            "get": op("healthz", "The process is up", {"200": ok("up", "Health")}, auth=False)
        },
        "/readyz": {
            "get": op(
                "readyz",
                "Metadata and blob storage answer",
                {"200": ok("ready", "Readiness")},
                auth=False,
                special={
                    "503": {
                        "description": (
                            "a store does not answer (a Readiness body), or the server "
                            "sheds load (a problem)"
                        ),
                        "headers": {"Retry-After": {**HEADERS["Retry-After"], "required": False}},
                        "content": {
                            JSON: {"schema": schema("Readiness")},
                            PROBLEM_JSON: {"schema": schema("Problem")},
                        },
                    },
                },
            )
        },
        "/metrics": {
            "get": op(
                "metrics",
                "Every metric in the Prometheus text format, for the metrics token "
                "(Authorization: Bearer <metrics_token>; 401 without it; 404 here when "
                "metrics_port gives /metrics a listener of its own)",
                {
                    "200": {
                        "description": "the metrics (docs/OPERATIONS.md, Metrics)",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                ("404",),
                auth=False,
            )
        },
        "/openapi.json": {
            "get": op(
                "openapi",
                "This document",
                {"200": ok("the OpenAPI document", "OpenAPI")},
                auth=False,
            )
        },
        "/v1/users": {
            "post": op(
                "signUp",
                "Sign up",
                {"201": ok("the new user", "User")},
                ("409", "429"),
                auth=False,
                body=json_body(
                    {
                        **CREDENTIALS,
                        "username": USERNAME["schema"],
                        "display_name": {"type": "string", "maxLength": 100},
                    },
                    ("username", "password"),
                ),
                special={"409": problem_response("409", "the username is taken")},
            )
        },
        "/v1/sessions": {
            "post": op(
                "logIn",
                "Log in: a bearer token",
                {"201": ok("a session", "Session")},
                ("429",),
                auth=False,
                body=json_body(CREDENTIALS, ("username", "password")),
            )
        },
        "/v1/sessions/current": {
            "delete": op("logOut", "Log out", {"204": ok("the token is revoked")})
        },
        "/v1/me": {
            "get": op("getMe", "My profile with counts", {"200": ok("my profile", "Profile")}),
            "patch": op(
                "updateMe",
                "Change display_name or private",
                {"200": ok("my profile", "Profile")},
                body=json_body(
                    {
                        "display_name": {"type": "string", "maxLength": 100},
                        "private": {"type": "boolean"},
                    },
                    (),
                ),
            ),
        },
        "/v1/me/password": {
            "put": op(
                "changePassword",
                "Change my password; every other session of mine ends",
                {"204": ok("changed; this token still works, no other does")},
                ("403", "429"),
                body=json_body(
                    {
                        "password": {"type": "string", "maxLength": 1024},
                        "new_password": CREDENTIALS["password"],
                    },
                    ("password", "new_password"),
                ),
                special={"403": problem_response("403", "the password is wrong")},
            )
        },
        "/v1/me/sessions": {
            "get": op(
                "listMySessions",
                "My sessions: when each was made and last used, and from where",
                {"200": ok("my unexpired sessions", "UserSessions")},
            ),
            "delete": op(
                "logOutEverywhere",
                "Log out everywhere: every session of mine ends, this one too",
                {"204": ok("every token of mine is revoked")},
            ),
        },
        "/v1/me/sessions/{session_id}": {
            "delete": op(
                "revokeSession",
                "End one of my sessions",
                {"204": ok("its token is revoked")},
                ("404",),
                params=[path_param("session_id", ID)],
                special={"404": problem_response("404", "no session of mine has this id")},
            )
        },
        "/v1/me/requests": {
            "get": op(
                "listFollowRequests",
                "Pending follow requests to me",
                {"200": ok("requesters, newest first", "UserPage")},
                params=PAGE_PARAMS,
            )
        },
        "/v1/me/requests/{username}/approve": {
            "post": op(
                "approveFollowRequest",
                "Approve a follow request",
                {"200": ok("approved", "Approved")},
                ("404",),
                params=username,
            )
        },
        "/v1/users/{username}": {
            "get": op(
                "getProfile",
                "A profile with counts",
                {"200": ok("the profile", "Profile")},
                ("404",),
                auth=False,
                params=username,
            )
        },
        "/v1/users/{username}/photos": {
            "get": op(
                "listUserPhotos",
                "A user's photos this viewer may see, newest first",
                {"200": ok("a page of photos", "PhotoPage")},
                ("404",),
                auth=False,
                params=username + PAGE_PARAMS,
            )
        },
        "/v1/users/{username}/follow": {
            "put": op(
                "follow",
                "Follow (a request, for a private account)",
                {"200": ok("the state", "FollowState")},
                ("404",),
                params=username,
            ),
            "delete": op(
                "unfollow",
                "Unfollow or cancel a request",
                {"204": ok("not following")},
                ("404",),
                params=username,
            ),
        },
        "/v1/users/{username}/followers": {
            "get": op(
                "listFollowers",
                "Who follows the user (a private account's: its followers and itself only)",
                {"200": ok("a page of users", "UserPage")},
                ("403", "404"),
                auth=False,
                params=username + PAGE_PARAMS,
            )
        },
        "/v1/users/{username}/following": {
            "get": op(
                "listFollowing",
                "Whom the user follows (a private account's: its followers and itself only)",
                {"200": ok("a page of users", "UserPage")},
                ("403", "404"),
                auth=False,
                params=username + PAGE_PARAMS,
            )
        },
        "/v1/photos": {
            "post": op(
                "uploadPhoto",
                "Upload a photo or video",
                {
                    "201": ok("the new photo", "Photo"),
                    "200": ok("the photo of the first upload with this Idempotency-Key", "Photo"),
                },
                ("409", "413", "415", "422", "429"),
                special={
                    "409": problem_response(
                        "409",
                        "an upload with this Idempotency-Key is still in progress",
                        ("Retry-After",),
                    ),
                    "503": problem_response(
                        "503",
                        "a store cannot be reached, or the server sheds load: connections, or "
                        "uploads past the decoding queue (decode_threads + decode_queue); retry "
                        "after Retry-After seconds",
                    ),
                },
                params=[
                    header_param(
                        "Idempotency-Key",
                        {"type": "string", "minLength": 1, "maxLength": 128},
                        "printable; a retry with the same key returns the first upload's photo",
                    )
                ],
                body={
                    "multipart/form-data": {
                        "schema": obj(
                            {
                                "file": {
                                    "type": "string",
                                    "contentMediaType": "application/octet-stream",
                                },
                                "title": {"type": "string", "minLength": 1, "maxLength": 200},
                                "visibility": {"enum": ["public", "followers", "private"]},
                            },
                            ("file", "title"),
                        )
                    }
                },
            )
        },
        "/v1/photos/{photo_id}": {
            "get": op(
                "getPhoto",
                "A photo's metadata and media URLs",
                {"200": ok("the photo", "Photo")},
                ("404",),
                auth=False,
                params=photo,
            ),
            "delete": op(
                "deletePhoto",
                "Soft delete (owner only)",
                {"204": ok("deleted; restorable for a while")},
                ("403", "404"),
                params=photo,
            ),
        },
        "/v1/photos/{photo_id}/restore": {
            "post": op(
                "restorePhoto",
                "Undo a delete within the retention window",
                {"200": ok("the photo", "Photo")},
                ("404", "410"),
                params=photo,
            )
        },
        "/v1/photos/{photo_id}/like": {
            "put": op(
                "likePhoto", "Like", {"200": ok("liked", "LikeState")}, ("404",), params=photo
            ),
            "delete": op(
                "unlikePhoto",
                "Unlike",
                {"200": ok("not liked", "LikeState")},
                ("404",),
                params=photo,
            ),
        },
        "/v1/media/{photo_id}/{secret}/{name}": {
            "get": media_operation(
                "getMedia",
                "Media bytes: thumb, large, poster, video; original (the owner's "
                "token). ETag, 304, single byte ranges (206, 416)",
                head=False,
            ),
            "head": media_operation("headMedia", "The headers of GET of the same media", head=True),
        },
        "/v1/timeline": {
            "get": op(
                "timeline",
                "Photos of everyone I follow",
                {"200": ok("a page", "PhotoPage")},
                params=[
                    *PAGE_PARAMS,
                    query_param(
                        "order", {"enum": ["top", "recent"]}, "top (the default) or recent"
                    ),
                ],
            )
        },
        "/v1/search/photos": {
            "get": op(
                "searchPhotos",
                "Photos whose titles have every word of q, newest first. One request reads a "
                "bounded share of the title index: a page may hold fewer items than limit, "
                "even none, and still carry a next_cursor. Without a token, searches are "
                "limited per client address (429)",
                {"200": ok("a page", "PhotoPage")},
                ("429",),
                auth=False,
                params=[
                    *PAGE_PARAMS,
                    query_param(
                        "q",
                        {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
                        "the words to find",
                        required=True,
                    ),
                ],
            )
        },
    }


def head_of(get: dict[str, Any]) -> dict[str, Any]:
    """The HEAD of a GET operation (routes.heads serves one beside every GET): the same
    parameters, statuses and headers, and no body in any answer."""
    responses = {}
    for status, response in get["responses"].items():
        if "$ref" in response:
            response = RESPONSES[response["$ref"].rsplit("/", 1)[1]]
        responses[status] = {k: v for k, v in response.items() if k != "content"}
    name = get["operationId"]
    return {
        **get,
        "operationId": "head" + name[0].upper() + name[1:],
        "summary": f"The headers of GET: {get['summary'][0].lower()}{get['summary'][1:]}",
        "responses": responses,
    }


def with_heads(paths: dict[str, Any]) -> dict[str, Any]:
    return {
        path: {**ops, "head": ops.get("head") or head_of(ops["get"])} if "get" in ops else ops
        for path, ops in paths.items()
    }


def spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "instastore",
            "version": __version__,
            "description": (
                "Photo and video sharing over HTTP. Every error is application/problem+json; "
                "a 405 (a method a URL does not take) carries Allow. Every JSON response is sent "
                "with X-Content-Type-Options: nosniff and "
                "Cache-Control: no-store (they depend on the viewer's token, or carry one)."
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "headers": HEADERS,
            "responses": RESPONSES,
        },
        "paths": with_heads(paths()),
    }
