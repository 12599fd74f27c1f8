"""The whole URL surface of the service, in one place. Each handler declares its
operation (``handlers/operation.py``); ``openapi.py`` assembles the description of this
list from them, and a test keeps the two equal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from instastore.server.handlers import (
    accounts,
    activity,
    blocks,
    comments,
    feed,
    media,
    ops,
    photos,
    reports,
    share,
    social,
    tags,
)
from instastore.server.openapi import DESCRIBED, DOCUMENT

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def heads(routes: list[tuple[str, str, Handler]]) -> list[tuple[str, str, Handler]]:
    """A HEAD beside every GET of ``routes`` that has none of its own: the same handler,
    whose body aiohttp does not send (RFC 9110 9.3.2: HEAD is GET without the content).
    Probes and caches ask HEAD; a 405 there would say the URL takes no GET either."""
    own = {path for method, path, _ in routes if method == "HEAD"}
    return [("HEAD", path, h) for method, path, h in routes if method == "GET" and path not in own]


ROUTES = [
    ("GET", "/healthz", ops.healthz),
    ("GET", "/readyz", ops.readyz),
    ("GET", "/openapi.json", ops.openapi),
    ("GET", "/metrics", ops.metrics),
    ("POST", "/v1/users", accounts.sign_up),
    ("POST", "/v1/sessions", accounts.log_in),
    ("DELETE", "/v1/sessions/current", accounts.log_out),
    ("GET", "/v1/me", accounts.me),
    ("PATCH", "/v1/me", accounts.update_me),
    ("PUT", "/v1/me/password", accounts.change_password),
    ("GET", "/v1/me/sessions", accounts.my_sessions),
    ("DELETE", "/v1/me/sessions", accounts.log_out_everywhere),
    ("DELETE", "/v1/me/sessions/{session_id}", accounts.revoke_session),
    ("GET", "/v1/me/requests", social.requests),
    ("POST", "/v1/me/requests/{username}/approve", social.approve),
    ("DELETE", "/v1/me/requests/{username}", social.decline),
    ("DELETE", "/v1/me/followers/{username}", social.remove_follower),
    ("GET", "/v1/users/{username}", accounts.profile),
    ("GET", "/v1/users/{username}/photos", photos.user_photos),
    ("PUT", "/v1/users/{username}/follow", social.follow),
    ("DELETE", "/v1/users/{username}/follow", social.unfollow),
    ("GET", "/v1/users/{username}/followers", social.followers),
    ("GET", "/v1/users/{username}/following", social.following),
    ("POST", "/v1/photos", photos.upload),
    ("GET", "/v1/photos/{photo_id}", photos.get_photo),
    ("DELETE", "/v1/photos/{photo_id}", photos.delete_photo),
    ("POST", "/v1/photos/{photo_id}/restore", photos.restore_photo),
    ("PUT", "/v1/photos/{photo_id}/like", photos.like),
    ("DELETE", "/v1/photos/{photo_id}/like", photos.unlike),
    ("GET", "/v1/photos/{photo_id}/likers", photos.likers),
    ("POST", "/v1/photos/{photo_id}/comments", comments.add_comment),
    ("GET", "/v1/photos/{photo_id}/comments", comments.list_comments),
    ("DELETE", "/v1/photos/{photo_id}/comments/{comment_id}", comments.delete_comment),
    ("GET", "/v1/media/{photo_id}/{secret}/{name}", media.media),
    ("HEAD", "/v1/media/{photo_id}/{secret}/{name}", media.media),
    ("GET", "/v1/timeline", feed.timeline),
    ("GET", "/v1/search/photos", feed.search),
    ("GET", "/v1/search/users", social.search_users),
    ("GET", "/p/{photo_id}", share.permalink),
    ("GET", "/oembed", share.oembed_document),
    ("GET", "/v1/activity", activity.list_activity),
    ("GET", "/v1/activity/unread", activity.unread),
    ("POST", "/v1/activity/read", activity.mark_read),
    ("GET", "/v1/me/blocks", blocks.my_blocks),
    ("PUT", "/v1/users/{username}/block", blocks.block),
    ("DELETE", "/v1/users/{username}/block", blocks.unblock),
    ("POST", "/v1/photos/{photo_id}/report", reports.report_photo),
    ("POST", "/v1/photos/{photo_id}/comments/{comment_id}/report", reports.report_comment),
    ("POST", "/v1/users/{username}/report", reports.report_user),
    ("GET", "/v1/tags", tags.search_tags),
    ("GET", "/v1/tags/{tag}/photos", tags.tag_photos),
    ("PATCH", "/v1/photos/{photo_id}", tags.edit_photo),
]
ROUTES += heads(ROUTES)


async def expect(request: web.Request) -> None:
    """Answer ``Expect: 100-continue``; ignore any other expectation, as RFC 9110 10.1.1
    allows. (aiohttp's own handler answers those with a text/plain 417 that no middleware
    sees, and that no operation declares.)"""
    if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the 100 is not part of the response's size


def setup_routes(app: web.Application) -> None:
    app[DESCRIBED] = ROUTES
    app[DOCUMENT] = {}
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler, expect_handler=expect)
