"""The OpenAPI 3.1 description of the service, served at /openapi.json.

Assembled, not written beside the routes: each handler declares its operation
(``server/handlers/operation.py``: summary, description, tag, parameters, body, answers),
``routes.ROUTES`` lists which handler serves which method and path, and this module adds
what every operation shares (the components, the security scheme, the servers, the
statuses every operation can answer) and fills in the settings in force (``Setting``),
so the document served states the bounds of the running service. A GET route's HEAD is
derived from its GET. It must never promise less than the service does:
``tests/api/test_openapi.py`` keeps its operations equal to ``routes.ROUTES`` and validates
live responses against it, and ``tests/api/test_openapi_fuzz.py`` fuzzes every operation
from it, schema-valid requests and invalid ones.

Statuses every operation can answer are declared on each: 400 (a request the service
cannot read, such as a header that is not UTF-8), 401 (a malformed or unknown bearer
token is an error on every route, public ones included, so a client learns its token
went bad), 500 and 503 (a store cannot be reached, or the server sheds connections).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from instastore.server.handlers.operation import (
    COUNT,
    ID,
    PROBLEM_JSON,
    TIME,
    USERNAME_SCHEMA,
    Handler,
    Operation,
    Setting,
    TextPattern,
    declared,
    obj,
    ref,
    schema,
    text_pattern,
)

from instastore import __version__
from instastore.config import Settings
from instastore.limits import MAX_SESSIONS_LISTED

MEDIA_NAMES = ("thumb", "large", "poster", "video", "original")
VISIBILITIES = ("public", "followers", "private")
# The routes the served document describes (set by routes.setup_routes).
DESCRIBED = web.AppKey("described", list)
# The served document, made at its first request (off the event loop) and kept.
DOCUMENT = web.AppKey("openapi_document", dict)
TAGS = {
    "accounts": "sign up, profiles, my account",
    "sessions": "log in and out, my sessions",
    "social": "follow, unfollow, follower lists, follow requests, account search, blocks",
    "photos": "upload, read, delete, restore, like, likers",
    "comments": "comments on photos",
    "media": "the bytes of photos and videos",
    "feed": "the home timeline and title search",
    "share": "a public photo's page (Open Graph, Twitter Card) and its oEmbed document",
    "ops": "health, readiness, metrics, this document",
    "moderation": "reporting a photo, a comment or an account to the operators",
    "activity": "my activity inbox: likes, comments, mentions, follows, requests",
    "hashtags": "a tag's photos, tags by prefix",
}


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


MENTIONS = {
    "type": "array",
    "items": obj({"id": ID, "username": USERNAME_SCHEMA}),
    "description": "the existing accounts its text mentions with @name, in order, each once",
}

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
            "username": USERNAME_SCHEMA,
            "display_name": {"type": "string"},
            "private": {"type": "boolean"},
        }
    ),
    "Profile": obj(
        {
            "id": ID,
            "username": USERNAME_SCHEMA,
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
            "visibility": {"enum": list(VISIBILITIES)},
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
            "video_status": {
                "enum": ["ready", "processing", "failed"],
                "description": "videos only: whether media.video (the browser-safe rendition) "
                "exists, is being made, or could not be made",
            },
            "video_failure": {
                "type": "string",
                "description": "why the rendition could not be made; its owner's view only",
            },
            "likes": COUNT,
            "liked": {"type": "boolean", "description": "whether the viewer likes it"},
            "comments": COUNT,
            "mentions": MENTIONS,
            "deleted_at": {**TIME, "description": "set while the photo is deleted and restorable"},
        },
        ("id", "owner", "title", "kind", "visibility", "created_at", "width", "height", "media"),
    ),
    "PhotoPage": page("Photo"),
    "Comment": obj(
        {
            "id": ID,
            "photo_id": ID,
            "author": {
                "anyOf": [schema("User"), obj({"id": ID})],
                "description": "the author; only the id if unknown",
            },
            "text": {"type": "string"},
            "created_at": TIME,
            "mentions": MENTIONS,
        }
    ),
    "CommentPage": page("Comment"),
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
    "OEmbed": obj(
        {
            "version": {"const": "1.0"},
            "type": {"enum": ["photo", "rich", "link"]},
            "title": {"type": "string"},
            "author_name": {"type": "string"},
            "author_url": {"type": "string", "format": "uri"},
            "provider_name": {"type": "string"},
            "provider_url": {"type": "string", "format": "uri"},
            "cache_age": {"type": "integer", "minimum": 0},
            "url": {"type": "string", "format": "uri", "description": "photo: the image"},
            "html": {
                "type": "string",
                "description": "rich: an HTML5 <video> of the viewer-safe copy",
            },
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "thumbnail_url": {"type": "string", "format": "uri"},
            "thumbnail_width": {"type": "integer", "minimum": 1},
            "thumbnail_height": {"type": "integer", "minimum": 1},
        },
        ("version", "type", "title", "provider_name", "provider_url", "cache_age"),
    ),
    "ActivityEvent": obj(
        {
            "id": ID,
            "kind": {"enum": ["like", "comment", "mention", "follow", "request", "approved"]},
            "created_at": TIME,
            "actor": schema("User"),
            "unread": {"type": "boolean", "description": "past my read mark"},
            "photo": {
                "description": "like, comment, mention: the photo it is about",
                **obj({"id": ID, "title": {"type": "string"}}),
            },
            "comment_id": {**ID, "description": "a comment, or a mention in one"},
        },
        ("id", "kind", "created_at", "actor", "unread"),
    ),
    "ActivityPage": page("ActivityEvent"),
    "ActivityUnread": obj(
        {
            "unread": {**COUNT, "maximum": 99},
            "more": {"type": "boolean", "description": "there may be more than unread"},
        }
    ),
    "ActivityRead": obj(
        {
            "read_up_to": {"anyOf": [ID, {"type": "null"}], "description": "null: none yet"},
            "unread": {**COUNT, "maximum": 99},
            "more": {"type": "boolean"},
        }
    ),
    "OpenAPI": obj(
        {"openapi": {"type": "string"}, "info": {"type": "object"}, "paths": {"type": "object"}},
        ("openapi", "info", "paths"),
        closed=False,
    ),
    "TagList": obj(
        {
            "tags": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": "folded as search folds words, in order; no counts",
            }
        }
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
    "451": ("bytes an operator took down, uploaded again", ()),
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


def op(declared_op: Operation) -> dict[str, Any]:
    """One operation: its successes, its errors (each a shared problem response unless
    ``special`` says otherwise) and the errors every operation can answer."""
    o = declared_op
    codes = set(COMMON_ERRORS) | set(o.errors) | (set(BODY_ERRORS) if o.body else set())
    responses = {
        **o.success,
        **{code: ref("responses", f"Problem{code}") for code in sorted(codes)},
        **o.special,
    }
    operation: dict[str, Any] = {
        "operationId": o.operation_id,
        "tags": [o.tag],
        "summary": o.summary,
        "description": o.description,
        "security": [{"bearer": []}] if o.auth else [{}, {"bearer": []}],
        "responses": dict(sorted(responses.items())),
    }
    if o.params:
        operation["parameters"] = [p.described() for p in o.params]
    if o.body:
        operation["requestBody"] = {"required": True, "content": o.body}
    return operation


def head_of(get: dict[str, Any], names: Operation | None = None) -> dict[str, Any]:
    """The HEAD of a GET operation (routes.heads serves one beside every GET): the same
    parameters, statuses and headers, and no body in any answer; its names are derived
    from GET's unless ``names`` declares them."""
    responses = {}
    for status, response in get["responses"].items():
        if "$ref" in response:
            response = RESPONSES[response["$ref"].rsplit("/", 1)[1]]
        responses[status] = {k: v for k, v in response.items() if k != "content"}
    name = get["operationId"]
    own = {
        "operationId": "head" + name[0].upper() + name[1:],
        "summary": f"The headers of GET: {get['summary'][0].lower()}{get['summary'][1:]}",
        "description": f"GET without its body. {get['description']}",
    }
    if names is not None:
        own = {
            "operationId": names.operation_id,
            "summary": names.summary,
            "description": names.description,
        }
    return {**get, **own, "responses": responses}


def in_force(node: Any, settings: Settings) -> Any:
    """``node`` with each ``Setting`` replaced by its value in ``settings`` and each
    ``TextPattern`` by its pattern."""
    if isinstance(node, Setting):
        return getattr(settings, node.name)
    if isinstance(node, TextPattern):
        return text_pattern(node.required)
    if isinstance(node, dict):
        return {k: in_force(v, settings) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [in_force(v, settings) for v in node]
    return node


def paths(routes: list[tuple[str, str, Handler]]) -> dict[str, Any]:
    described: dict[str, dict[str, Any]] = {}
    for method, path, handler in routes:
        if method == "HEAD":
            continue
        found = declared(handler, method)
        if found is None:
            raise LookupError(f"{method} {path}: its handler declares no operation")
        described.setdefault(path, {})[method.lower()] = op(found)
    for method, path, handler in routes:
        if method == "HEAD":
            described[path]["head"] = head_of(
                described[path]["get"], declared(handler, "HEAD", only=True)
            )
    return described


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def spec(settings: Settings, routes: list[tuple[str, str, Handler]]) -> dict[str, Any]:
    """The document for these routes, with the bounds of ``settings``."""
    described = in_force(paths(routes), settings)
    used = _refs(described) | _refs(SCHEMAS)
    responses = {
        name: response
        for name, response in RESPONSES.items()
        if f"#/components/responses/{name}" in used
    }
    used |= _refs(responses)
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
                "Cache-Control: no-store (they depend on the viewer's token, or carry one), "
                "but those that declare a Cache-Control of their own (oEmbed: the same for "
                "every caller)."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
            "contact": {"name": "instastore maintainers"},
        },
        "servers": [{"url": "/", "description": "the host that served this document"}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "headers": {
                name: header
                for name, header in HEADERS.items()
                if f"#/components/headers/{name}" in used
            },
            "responses": responses,
        },
        "paths": described,
    }
