"""The records: User, Photo (with its renditions), Follow, Comment. Plain immutable data; rules
about them live in the services that use them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime


class Kind(enum.StrEnum):
    PHOTO = "photo"
    VIDEO = "video"


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    FOLLOWERS = "followers"
    PRIVATE = "private"


@dataclass(frozen=True)
class PhotoCounts:
    """A user's live (not deleted) photos, and how many of them only followers, or only
    the owner, may see: what each viewer's count of them is made of."""

    live: int
    followers: int = 0  # visibility FOLLOWERS
    private: int = 0  # visibility PRIVATE

    def seen_by(self, owner_private: bool, *, own: bool, follows: bool) -> int:
        """How many of them a viewer may see (``social.Audience.can_see`` counted)."""
        if own:
            return self.live
        if owner_private and not follows:
            return 0
        hidden = self.private + (0 if follows else self.followers)
        return max(0, self.live - hidden)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    password_hash: str
    display_name: str = ""
    private: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True)
class UserSession:
    """A log-in session as stored; its token is stored only as a hash, and never here.
    ``address``: the client's when it logged in."""

    id: int
    user_id: int
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    address: str = ""


@dataclass(frozen=True)
class Rendition:
    """One stored form of a photo or video: "original", "large", "thumb", "poster", ..."""

    name: str
    locator: str  # opaque: the blob store's address of the bytes
    content_type: str
    size: int  # bytes
    width: int | None = None
    height: int | None = None


class VideoState(enum.StrEnum):
    """Where a video's browser-safe "video" rendition is: being made by the transcode
    queue, or given up on (with a reason its owner sees). A record without one is ready."""

    PROCESSING = "processing"
    FAILED = "failed"


@dataclass(frozen=True)
class Transcode:
    state: VideoState
    reason: str = ""  # why it failed, for the owner


@dataclass(frozen=True)
class Photo:
    id: int
    owner_id: int
    title: str
    kind: Kind
    secret: str  # random; in every media URL so that an id alone fetches nothing
    sha256: str  # of the original upload, hex
    created_at: datetime
    visibility: Visibility = Visibility.PUBLIC
    renditions: tuple[Rendition, ...] = field(default_factory=tuple)
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    deleted_at: datetime | None = (
        None  # its own cell in storage: a delete never rewrites the record
    )
    transcode: Transcode | None = None  # a video's rendition not made (yet); None: ready

    def rendition(self, name: str) -> Rendition | None:
        return next((r for r in self.renditions if r.name == name), None)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def same_upload(self, other: Photo) -> bool:
        """Are these two records of one upload (a save tried again, perhaps switched to
        other locators since), not two photos that were given one id? The secret is 96
        random bits drawn per upload."""
        return (self.id, self.owner_id, self.secret) == (other.id, other.owner_id, other.secret)

    def with_deleted_at(self, deleted_at: datetime | None) -> Photo:
        return replace(self, deleted_at=deleted_at)

    def has_locators(self, locators: Mapping[str, str]) -> bool:
        """Every rendition named in ``locators`` exists and has exactly that locator."""
        current = {r.name: r.locator for r in self.renditions}
        return all(current.get(name) == locator for name, locator in locators.items())

    def with_locators(self, locators: Mapping[str, str]) -> Photo:
        """The record with the named renditions pointing at new locators (packing)."""
        return replace(
            self,
            renditions=tuple(
                replace(r, locator=locators.get(r.name, r.locator)) for r in self.renditions
            ),
        )


def switch_outcome(
    photo: Photo | None, old: Mapping[str, str], new: Mapping[str, str]
) -> Photo | bool:
    """What a conditional switch of locators (``PhotoStore.switch_locators``) does to the
    record as read, one rule for both adapters: True when it has ``new`` already (an
    earlier try switched it), False when it is gone, deleted, or no longer on ``old``;
    else the record to write in its place (``new`` instead of ``old``). A deleted photo
    never moves: purge counts references before it removes bytes."""
    if photo is None:
        return False
    if photo.has_locators(new):
        return True
    if photo.deleted or not photo.has_locators(old):
        return False
    return photo.with_locators(new)


def video_outcome(
    photo: Photo | None, replaces: str | None, result: Rendition | str
) -> Photo | bool:
    """What finishing a transcode does to the record as read
    (``PhotoStore.finish_video``), one rule for both adapters. ``result`` is the new
    "video" rendition, or why the transcode failed. True when the record shows ``result``
    already (an earlier try); False when it is gone, deleted, or its "video" rendition is
    no longer the one the job replaces (``replaces``: its locator, None for none);
    else the record to write: the rendition in place and the video ready, or the old
    rendition (if any) kept and the video marked failed with the reason."""
    if photo is None or photo.deleted:
        return False
    current = photo.rendition("video")
    if isinstance(result, Rendition):
        if current is not None and current.locator == result.locator:
            return True
    elif photo.transcode == Transcode(VideoState.FAILED, result):
        return True
    if (current.locator if current else None) != replaces:
        return False
    if isinstance(result, str):
        return replace(photo, transcode=Transcode(VideoState.FAILED, result))
    kept = tuple(r for r in photo.renditions if r.name != "video")
    return replace(photo, renditions=(*kept, result), transcode=None)


@dataclass(frozen=True)
class Follow:
    follower_id: int
    followee_id: int
    created_at: datetime


@dataclass(frozen=True)
class Comment:
    """A comment on a photo: its id (time-sortable, so comments sort oldest first by id),
    the photo, its author and its text, checked as titles are (``instastore.text``)."""

    id: int
    photo_id: int
    author_id: int
    text: str
    created_at: datetime
