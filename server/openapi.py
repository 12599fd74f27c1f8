"""The OpenAPI 3.1 description of the service, served at /openapi.json.

Written by hand to say what the routes mean; ``tests/test_openapi.py`` keeps its list
of operations equal to ``routes.ROUTES``.
"""

from __future__ import annotations

from typing import Any

from instastore import __version__

PROBLEM = {"$ref": "#/components/responses/Problem"}
PAGE_PARAMS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"},
]


def op(summary: str, ok: str = "200", *, auth: bool = True, params: list | None = None, body: dict | None = None,
       errors: tuple[str, ...] = ("400", "401", "404")) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {ok: {"description": "success"}, **{code: PROBLEM for code in errors}},
    }
    if auth:
        operation["security"] = [{"bearer": []}]
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = {"required": True, "content": body}
    return operation


def json_body(properties: dict[str, Any], required: list[str]) -> dict:
    return {"application/json": {"schema": {"type": "object", "properties": properties, "required": required}}}


def path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def spec() -> dict[str, Any]:
    username = [path_param("username")]
    photo = [path_param("photo_id")]
    return {
        "openapi": "3.1.0",
        "info": {"title": "instastore", "version": __version__, "description": "Photo and video sharing over HTTP."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details",
                    "content": {"application/problem+json": {"schema": {
                        "type": "object",
                        "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                       "status": {"type": "integer"}, "detail": {"type": "string"}},
                    }}},
                }
            },
        },
        "paths": {
            "/healthz": {"get": op("The process is up", auth=False, errors=())},
            "/readyz": {"get": op("Both stores answer (503 if not)", auth=False, errors=("503",))},
            "/openapi.json": {"get": op("This document", auth=False, errors=())},
            "/v1/users": {"post": op("Sign up", "201", auth=False, errors=("400", "409"), body=json_body(
                {"username": {"type": "string"}, "password": {"type": "string"}, "display_name": {"type": "string"}},
                ["username", "password"]))},
            "/v1/sessions": {"post": op("Log in: a bearer token", "201", auth=False, errors=("400", "401"), body=json_body(
                {"username": {"type": "string"}, "password": {"type": "string"}}, ["username", "password"]))},
            "/v1/sessions/current": {"delete": op("Log out", "204", errors=("401",))},
            "/v1/me": {
                "get": op("My profile with counts", errors=("401",)),
                "patch": op("Change display_name or private", errors=("400", "401"), body=json_body(
                    {"display_name": {"type": "string"}, "private": {"type": "boolean"}}, [])),
            },
            "/v1/me/requests": {"get": op("Pending follow requests to me", params=PAGE_PARAMS)},
            "/v1/me/requests/{username}/approve": {"post": op("Approve a follow request", params=username)},
            "/v1/users/{username}": {"get": op("A profile with counts", auth=False, params=username)},
            "/v1/users/{username}/photos": {"get": op("A user's photos, newest first", auth=False,
                                                      params=username + PAGE_PARAMS)},
            "/v1/users/{username}/follow": {
                "put": op("Follow (a request, for a private account)", params=username),
                "delete": op("Unfollow or cancel a request", "204", params=username),
            },
            "/v1/users/{username}/followers": {"get": op("Who follows the user", auth=False, params=username + PAGE_PARAMS)},
            "/v1/users/{username}/following": {"get": op("Whom the user follows", auth=False, params=username + PAGE_PARAMS)},
            "/v1/photos": {"post": op(
                "Upload a photo or video (201; 200 with the first photo for a reused Idempotency-Key)", "201",
                errors=("400", "401", "409", "413", "415", "422", "429"),
                params=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                body={"multipart/form-data": {"schema": {"type": "object", "required": ["file", "title"], "properties": {
                    "file": {"type": "string", "format": "binary"}, "title": {"type": "string"},
                    "visibility": {"type": "string", "enum": ["public", "followers", "private"]}}}}})},
            "/v1/photos/{photo_id}": {
                "get": op("A photo's metadata and media URLs", auth=False, params=photo),
                "delete": op("Soft delete (owner only)", "204", params=photo, errors=("401", "403", "404")),
            },
            "/v1/photos/{photo_id}/restore": {"post": op("Undo a delete within the retention window", params=photo,
                                                         errors=("401", "404", "410"))},
            "/v1/photos/{photo_id}/like": {
                "put": op("Like", params=photo),
                "delete": op("Unlike", params=photo),
            },
            "/v1/media/{photo_id}/{secret}/{name}": {"get": op(
                "Media bytes: thumb, large, poster, video; original (owner's token). ETag, 304, single ranges (206, 416)",
                auth=False, params=photo + [path_param("secret"), path_param("name")],
                errors=("304", "401", "403", "404", "416"))},
            "/v1/timeline": {"get": op("Photos of everyone I follow", params=PAGE_PARAMS + [
                {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["top", "recent"]}}])},
            "/v1/search/photos": {"get": op("Photos whose titles have every word of q, newest first", auth=False,
                                            params=PAGE_PARAMS + [{"name": "q", "in": "query", "required": True,
                                                                   "schema": {"type": "string"}}])},
        },
    }
