"""JSON shapes of the API. Ids are decimal strings (JSON numbers lose precision past
2**53); times are ISO 8601 UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from instastore.accounts import Profile
from instastore.model import Kind, Photo, User
from instastore.paging import Page

PUBLIC_RENDITIONS = {
    Kind.PHOTO: ("thumb", "large"),
    Kind.VIDEO: ("thumb", "large", "poster", "video"),
}


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "username": user.username,
        "display_name": user.display_name,
        "private": user.private,
    }


def profile_json(profile: Profile) -> dict[str, Any]:
    return {
        **user_json(profile.user),
        "created_at": iso(profile.user.created_at),
        "counts": {
            "photos": profile.photos,
            "followers": profile.followers,
            "following": profile.following,
        },
    }


def media_url(photo: Photo, name: str) -> str:
    return f"/v1/media/{photo.id}/{photo.secret}/{name}"


def media_json(photo: Photo, viewer: User | None) -> dict[str, str]:
    """The media URLs a viewer may use: thumbnails and large renditions (and a video's
    playable copy without metadata, "video") for everyone allowed to see it; the
    original upload of a photo or video for its owner only. A video stored before the
    "video" copy existed has no URL for viewers: its only playable bytes are the
    upload itself, location atoms and all."""
    owner = viewer is not None and viewer.id == photo.owner_id
    # SECURITY: never hand a viewer the uploaded bytes of a video (issue 10, item 10).
    return {
        r.name: media_url(photo, r.name)
        for r in photo.renditions
        if owner or r.name in PUBLIC_RENDITIONS[photo.kind]
    }


def photo_json(
    photo: Photo, viewer: User | None, owner: User | None, likes: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(photo.id),
        "owner": user_json(owner) if owner else {"id": str(photo.owner_id)},
        "title": photo.title,
        "kind": photo.kind.value,
        "visibility": photo.visibility.value,
        "created_at": iso(photo.created_at),
        "width": photo.width,
        "height": photo.height,
        "media": media_json(photo, viewer),
    }
    if photo.duration_s is not None:
        body["duration_s"] = photo.duration_s
    if likes is not None:
        body["likes"] = likes
    if photo.deleted_at is not None:
        body["deleted_at"] = iso(photo.deleted_at)
    return body


def page_json(items: list[Any], page: Page) -> dict[str, Any]:
    return {"items": items, "next_cursor": page.next_cursor}


def json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)
