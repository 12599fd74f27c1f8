"""JSON shapes of the API. Ids are decimal strings (JSON numbers lose precision past
2**53); times are ISO 8601 UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from instastore import ids
from instastore.accounts import Profile
from instastore.activity import ActivityCard
from instastore.comments import CommentCard
from instastore.model import Kind, User, UserSession
from instastore.paging import Page
from instastore.social import Relation
from instastore.viewing import PhotoCard


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "username": user.username,
        "display_name": user.display_name,
        "private": user.private,
    }


def session_json(session: UserSession, current: UserSession) -> dict[str, Any]:
    return {
        "id": str(session.id),
        "created_at": iso(session.created_at),
        "last_used_at": iso(session.last_used_at),
        "expires_at": iso(session.expires_at),
        "address": session.address,
        "current": session.id == current.id,
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


def viewer_json(relation: Relation) -> dict[str, bool]:
    return {"following": relation.following, "requested": relation.requested}


def media_url(card: PhotoCard, name: str) -> str:
    return f"/v1/media/{card.photo.id}/{card.access}/{name}"


def media_json(card: PhotoCard) -> dict[str, str]:
    """The media URLs of the renditions the card's viewer may fetch
    (``instastore.viewing.allowed_renditions``), bound to that viewer unless the photo
    is public on a public account (``Viewing.access``)."""
    return {r.name: media_url(card, r.name) for r in card.renditions}


def photo_json(card: PhotoCard) -> dict[str, Any]:
    photo, owner = card.photo, card.owner
    body: dict[str, Any] = {
        "id": str(photo.id),
        "owner": user_json(owner) if owner else {"id": str(photo.owner_id)},
        "title": photo.title,
        "kind": photo.kind.value,
        "visibility": photo.visibility.value,
        "created_at": iso(photo.created_at),
        "width": photo.width,
        "height": photo.height,
        "media": media_json(card),
    }
    if photo.duration_s is not None:
        body["duration_s"] = photo.duration_s
    if photo.kind is Kind.VIDEO:
        body["video_status"] = photo.transcode.state.value if photo.transcode else "ready"
        if card.video_failure is not None:
            body["video_failure"] = card.video_failure
    body["likes"] = card.likes
    body["liked"] = card.liked
    body["comments"] = card.comments
    body["mentions"] = [mention_json(u) for u in card.mentions]
    if photo.deleted_at is not None:
        body["deleted_at"] = iso(photo.deleted_at)
    return body


def comment_json(card: CommentCard) -> dict[str, Any]:
    comment, author = card.comment, card.author
    return {
        "id": str(comment.id),
        "photo_id": str(comment.photo_id),
        "author": user_json(author) if author else {"id": str(comment.author_id)},
        "text": comment.text,
        "created_at": iso(comment.created_at),
        "mentions": [mention_json(u) for u in card.mentions],
    }


def photos_page_json(page: Page[PhotoCard]) -> dict[str, Any]:
    return page_json([photo_json(card) for card in page.items], page)


def page_json(items: list[Any], page: Page) -> dict[str, Any]:
    return {"items": items, "next_cursor": page.next_cursor}


def json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def mention_json(user: User) -> dict[str, str]:
    return {"id": str(user.id), "username": user.username}


def activity_json(card: ActivityCard) -> dict[str, Any]:
    event = card.event
    body: dict[str, Any] = {
        "id": str(event.event_id),
        "kind": event.kind,
        "created_at": iso(ids.created_at(event.event_id)),
        "actor": user_json(card.actor),
        "unread": card.unread,
    }
    if card.photo is not None:
        body["photo"] = {"id": str(card.photo.id), "title": card.photo.title}
    if event.comment_id:
        body["comment_id"] = str(event.comment_id)
    return body
