"""What a viewer may see and do with photos: the one place that decides it.

- Visibility: a photo the viewer may not see (``social.Audience``) is ``NotFound`` with the
  same words as a missing one, so nobody learns that it exists.
- Photo cards: a photo with its owner, its like count and the renditions this viewer may
  fetch, for single photos, a user's photos, search and the timeline alike.
- Renditions: one rule (``allowed_renditions``) for the media URLs a card lists and for
  the media route that serves them. Everyone who may see a photo gets its thumbnails and
  large renditions (and a video's metadata-free "video" copy); the original upload is its
  owner's alone.
- Media access: the rendition a media URL names (its secret is the capability), who
  holds it (a URL of a photo not public on a public account is bound to the viewer it
  was handed to, and works only while that viewer may see the photo), whether shared
  HTTP caches may keep it (a public photo of a public account, as this
  process knows the owner: its own changes at once, other processes' within the owner
  cache's few seconds), and its bytes: whole from the in-memory cache when small, else
  ranged from the blob store.
- Likes: like, unlike, counts, whether the viewer likes each photo of a card (one
  read per page) and who likes a photo, on visible photos only; the comment count of
  each card (the comments themselves: ``instastore.comments``).

It never speaks HTTP: status lines, headers and byte-range syntax are the server's.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from instastore import paging
from instastore.accounts import Accounts, Profile
from instastore.clock import utcnow
from instastore.errors import (
    InstastoreError,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    StorageError,
    Unavailable,
)
from instastore.lifecycle import volumes
from instastore.model import Kind, Photo, Rendition, User, VideoState, Visibility
from instastore.paging import Page
from instastore.photos import Photos, user_photos_scope
from instastore.ratelimit import SharedLimit
from instastore.social import Audience, Relation, Social
from instastore.storage.ports import BlobStore, CommentStore, LikeStore
from instastore.timeline import Order, Timeline

log = logging.getLogger(__name__)

HOLDER_TAG_BYTES = 12  # 96 bits: a media URL's holder cannot be changed without the key

# What everyone who may see a photo may fetch; the rest (the "original" upload) is the
# owner's.
# SECURITY: a viewer never gets the uploaded bytes of a video, only its
# metadata-free copy.
PUBLIC_RENDITIONS: dict[Kind, frozenset[str]] = {
    Kind.PHOTO: frozenset({"thumb", "large"}),
    Kind.VIDEO: frozenset({"thumb", "large", "poster", "video"}),
}


def owns(viewer: User | None, photo: Photo) -> bool:
    return viewer is not None and viewer.id == photo.owner_id


def video_failure(photo: Photo, viewer: User | None) -> str | None:
    """Why a video's rendition could not be made, for its owner; None for anyone else (a
    viewer sees only that it failed)."""
    if photo.transcode is None or photo.transcode.state is not VideoState.FAILED:
        return None
    return photo.transcode.reason if owns(viewer, photo) else None


def allowed_renditions(photo: Photo, viewer: User | None) -> tuple[Rendition, ...]:
    """The renditions of a photo ``viewer`` (who may see it) may fetch. A video stored
    before the "video" copy existed has none playable for viewers: its only playable
    bytes are the upload itself, location atoms and all."""
    if owns(viewer, photo):
        return photo.renditions
    return tuple(r for r in photo.renditions if r.name in PUBLIC_RENDITIONS[photo.kind])


@dataclass(frozen=True)
class PhotoCard:
    """A photo as one viewer sees it."""

    photo: Photo
    owner: User | None  # None: the owner's record is gone
    likes: int
    renditions: tuple[Rendition, ...]  # the ones this viewer may fetch
    access: str  # what this viewer's media URLs carry in place of the secret (``access``)
    comments: int = 0
    liked: bool = False  # whether this viewer likes it (never, for nobody signed in)
    video_failure: str | None = None  # why a video has no rendition: its owner's view only
    mentions: tuple[User, ...] = ()  # the accounts its title mentions (``@name``)


@dataclass(frozen=True)
class MediaGrant:
    """A rendition a media URL may serve to this viewer."""

    photo: Photo
    rendition: Rendition
    shared: bool  # shared HTTP caches may keep it: public photo of a public account


def unreadable(rendition: Rendition, exc: InstastoreError) -> Unavailable:
    """What a failed read of a rendition's bytes is to the viewer (the cause is logged)."""
    log.error("media %s could not be read: %s", rendition.locator, exc)
    return Unavailable(f"the {rendition.name} bytes cannot be read right now")


def _media_key(grant: MediaGrant) -> str:
    """A rendition's key in the media cache. By locator too: a rendition replaced by
    another (a video's backfilled transcode) is never served from another process's
    memory of the old bytes. ``Photos.delete`` drops "<id>/..."."""
    rendition = grant.rendition
    return f"{grant.photo.id}/{rendition.name}/{rendition.locator}"


class Viewing:
    def __init__(
        self,
        photos: Photos,
        accounts: Accounts,
        social: Social,
        timeline: Timeline,
        likes: LikeStore,
        blobs: BlobStore,
        searches: SharedLimit,
        media_key: bytes | None = None,
        comments: CommentStore | None = None,
    ) -> None:
        self.photos = photos
        self.accounts = accounts
        self.social = social
        self.timeline = timeline
        self.likes = likes
        self.comments = comments  # for the counts on cards (none: every count 0)
        self.blobs = blobs
        # Binds media URLs to their holders; the same on every host of a deployment
        # (``services.open_services`` reads it from the key store).
        self.media_key = media_key or secrets.token_bytes(paging.KEY_BYTES)
        # What a lookup of a missing photo id checks in its place (see ``_visible``).
        self._stand_in = Photo(0, 0, "", Kind.PHOTO, "", "", utcnow(), Visibility.PRIVATE)
        self.searches = searches  # anonymous searches per client address
        # Told of a like before it is stored (the activity inbox's event, shown once the
        # like stands).
        self.on_liked: Callable[[User, Photo], Awaitable[None]] | None = None
        # Told of an upload as it is answered (a replayed one too): the mention events of
        # its title; answers the accounts the title mentions.
        self.on_titled: Callable[[User, Photo], Awaitable[list[User]]] | None = None
        # The accounts each of some texts mentions (a page's titles, read together).
        self.mentions_of: Callable[[list[str]], Awaitable[list[list[User]]]] | None = None

    def audience(self, viewer: User | None) -> Audience:
        """Who may see what, for ``viewer``, with the shared cache of owners."""
        return self.social.audience(viewer, self.photos.users)

    # ---- visibility and cards ------------------------------------------------------

    async def visible(self, viewer: User | None, photo_id: int) -> tuple[Photo, Audience]:
        """The live photo if ``viewer`` may see it, and the audience that decided;
        ``NotFound`` otherwise, as for a missing id (also for what hangs off a photo:
        its comments, its likers)."""
        try:
            photo: Photo | None = await self.photos.get(photo_id)
        except NotFound:
            photo = None
        audience = self.audience(viewer)
        # SECURITY: invisible is missing, never "forbidden" (no stranger learns that it
        # exists), and a missing id costs the reads a hidden one does (its owner, the
        # follow), so the time of the answer does not tell them apart: a missing id
        # stands in the last owner looked up, whose record is as warm in the owner cache
        # as a hidden photo's owner.
        if photo is not None:
            self._stand_in = photo
        seen = await audience.can_see_evenly(photo or self._stand_in, photo_id)
        if photo is None or not seen:
            raise NotFound(f"no photo {photo_id}")
        return photo, audience

    async def photo(self, viewer: User | None, photo_id: int) -> Photo:
        """The live photo if ``viewer`` may see it; ``NotFound`` otherwise."""
        photo, _ = await self.visible(viewer, photo_id)
        return photo

    async def card(self, viewer: User | None, photo_id: int) -> PhotoCard:
        photo, audience = await self.visible(viewer, photo_id)
        (card,) = await self._cards(audience, [photo])
        return card

    async def _cards(self, audience: Audience, photos: list[Photo]) -> list[PhotoCard]:
        """Cards of photos ``audience`` may see (each distinct owner read once)."""
        owner_ids = list({p.owner_id for p in photos})
        photo_ids = [p.id for p in photos]
        viewer = audience.viewer
        likes, comments, liked, owners = await asyncio.gather(
            self._like_counts(audience, photo_ids),
            self._seen_comment_counts(audience, photo_ids),
            self._liked(viewer, photo_ids),
            asyncio.gather(*(audience.owner(o) for o in owner_ids)),
        )
        by_id = dict(zip(owner_ids, owners, strict=True))
        # SECURITY: an account hidden from the viewer is not named to them in a title.
        named = await audience.shown_mentions(await self._mentions([p.title for p in photos]))
        return [
            PhotoCard(
                p,
                by_id[p.owner_id],
                likes[p.id],
                allowed_renditions(p, viewer),
                self.access(p, by_id[p.owner_id], viewer),
                comments[p.id],
                p.id in liked,
                video_failure(p, viewer),
                tuple(mentions),
            )
            for p, mentions in zip(photos, named, strict=True)
        ]

    async def _mentions(self, titles: list[str]) -> list[list[User]]:
        if self.mentions_of is None:
            return [[] for _ in titles]
        return await self.mentions_of(titles)

    async def _comment_counts(self, photo_ids: list[int]) -> dict[int, int]:
        if self.comments is None:
            return dict.fromkeys(photo_ids, 0)
        return await self.comments.comment_counts(photo_ids)

    async def _liked(self, viewer: User | None, photo_ids: list[int]) -> set[int]:
        """Which of a page's photos the viewer likes: one read for the page."""
        if viewer is None or not photo_ids:
            return set()
        return await self.likes.liked_by(viewer.id, photo_ids)

    async def _page(self, audience: Audience, page: Page[Photo]) -> Page[PhotoCard]:
        return Page(await self._cards(audience, page.items), page.next_cursor)

    async def uploaded(self, user: User, photo: Photo, created: bool) -> PhotoCard:
        """The card of an upload: a new photo has no likes or comments; a replayed
        Idempotency-Key's photo as it is now. Either way its title's mention events are
        written first (again, for a replay: the first answer may have been lost before
        they were)."""
        named = [] if self.on_titled is None else await self.on_titled(user, photo)
        if not created:
            (card,) = await self._cards(self.audience(user), [photo])
            return card
        return PhotoCard(
            photo,
            user,
            0,
            allowed_renditions(photo, user),
            self.access(photo, user, user),
            video_failure=video_failure(photo, user),
            mentions=tuple(named),
        )

    # ---- lists -----------------------------------------------------------------------

    async def user_photos(
        self, viewer: User | None, username: str, cursor: str | None, limit: int
    ) -> Page[PhotoCard]:
        owner = await self.accounts.by_name(username)
        audience = self.audience(viewer)
        viewer_id = viewer.id if viewer else 0
        # SECURITY: an account hidden from the viewer (a block, a takedown) is missing.
        if await audience.hides_user(owner):
            raise NotFound(f"no user {username!r}")
        # SECURITY: a private account's list, to anyone but its owner and followers, is
        # one empty page: no cursor sits on (and so dates) one of its hidden photos.
        if not await audience.may_see_account(owner):
            self.photos.cursors.decode_cursor(
                cursor, user_photos_scope(owner.id, viewer_id)
            )  # still checked
            return Page([], None)
        page = await self.photos.by_user(owner.id, cursor, limit, audience.filter, viewer_id)
        return await self._page(audience, page)

    async def search(
        self, viewer: User | None, query: str, cursor: str | None, limit: int, address: str = ""
    ) -> Page[PhotoCard]:
        """A page of photos whose titles have every word of ``query``; ``RateLimited``
        past the anonymous searches of ``address`` (the client's) when ``viewer`` is None."""
        if viewer is None:
            # SECURITY: a search reads up to search_postings postings and needs no
            # account; without a token it is counted per address on every host.
            await self.searches.take(address, "searches without a token from this address")
        audience = self.audience(viewer)
        page = await self.photos.search(
            query, cursor, limit, audience.filter, viewer.id if viewer else 0
        )
        return await self._page(audience, page)

    async def timeline_page(
        self, reader: User, order: Order, cursor: str | None, limit: int
    ) -> Page[PhotoCard]:
        page = await self.timeline.page(reader, order, cursor, limit)
        return await self._page(self.audience(reader), page)

    async def profile(self, viewer: User | None, username: str) -> tuple[Profile, Relation | None]:
        """A profile with its counts, and where ``viewer`` stands with its user (None when
        anonymous or their own). Its photo count is of the photos ``viewer`` may see: a
        count of photos hidden from them would tell what they may not see."""
        user = await self.accounts.by_name(username)
        if viewer is not None and viewer.id == user.id:
            return await self.accounts.profile_of(user), None
        # SECURITY: an account hidden from the viewer (a block, a takedown) is missing,
        # its counts not read.
        if await self.audience(viewer).hides_user(user):
            raise NotFound(f"no user {username!r}")
        found = await self.accounts.profile_of(user)
        relation = None if viewer is None else await self.social.relation(viewer, found.user)
        photos = found.photo_counts.seen_by(
            found.user.private, own=False, follows=relation is not None and relation.following
        )
        followers, following = await self._follow_counts(self.audience(viewer), found)
        seen = dataclasses.replace(found, photos=photos, followers=followers, following=following)
        return seen, relation

    # ---- what a viewer does to a photo -----------------------------------------------

    async def delete(self, viewer: User, photo_id: int) -> None:
        """Soft delete by the owner; a photo the viewer cannot see is ``NotFound``, one
        they see but do not own ``NotAllowed``."""
        photo = await self.photo(viewer, photo_id)
        await self.photos.delete(photo.id, viewer.id)

    async def restore(self, viewer: User, photo_id: int) -> PhotoCard:
        photo = await self.photos.restore(photo_id, viewer.id)
        (card,) = await self._cards(self.audience(viewer), [photo])
        return card

    async def set_like(self, viewer: User, photo_id: int, liked: bool) -> int:
        """Like or unlike a photo the viewer may see; its like count after, as the viewer
        sees it."""
        photo, audience = await self.visible(viewer, photo_id)
        if liked:
            if self.on_liked is not None:
                await self.on_liked(viewer, photo)
            await self.likes.like(photo.id, viewer.id, utcnow())
        else:
            await self.likes.unlike(photo.id, viewer.id)
        return (await self._like_counts(audience, [photo.id]))[photo.id]

    async def likers(
        self, viewer: User | None, photo_id: int, cursor: str | None, limit: int
    ) -> Page[User]:
        """Who likes a photo the viewer may see, in id order; ``NotFound`` as for the
        photo. Its cursors are the photo's and this viewer's."""
        photo, audience = await self.visible(viewer, photo_id)
        scope = paging.Scope("likers", (photo.id, viewer.id if viewer else 0))
        cursors = self.photos.cursors
        users, last = await paging.fill_page(
            lambda after, n: self.likes.likers(photo.id, after, n),
            lambda ids: self.social.shown_ids(audience, ids),
            lambda i: i,
            lambda user: user.id,
            cursors.decode_cursor(cursor, scope),
            paging.clamp_limit(limit, self.social.max_page),
        )
        return Page(users, None if last is None else cursors.encode_cursor(last, scope))

    async def search_users(
        self, viewer: User | None, prefix: str, cursor: str | None, limit: int, address: str = ""
    ) -> Page[User]:
        """Accounts whose username starts with ``prefix``, in username order (private
        ones too: their profiles name them to anyone); limited per client address, as a
        title search is, when ``viewer`` is None."""
        if viewer is None:
            # SECURITY: no account needed; counted per address on every host.
            await self.searches.take(address, "searches without a token from this address")
        return await self.social.search_users(prefix, cursor, limit, viewer)

    # ---- media -----------------------------------------------------------------------

    def access(self, photo: Photo, owner: User | None, viewer: User | None) -> str:
        """What the media URLs handed to ``viewer`` carry: the photo's secret alone while
        the photo is public on a public account (one URL for everyone, which shared caches
        may keep); otherwise the secret, the viewer's id and a tag binding the two, a URL
        that works only while that viewer may see the photo."""
        public = photo.visibility is Visibility.PUBLIC and owner is not None and not owner.private
        if public or viewer is None:
            return photo.secret
        return f"{photo.secret}.{viewer.id}.{self._holder_tag(photo.id, viewer.id)}"

    def _holder_tag(self, photo_id: int, holder_id: int) -> str:
        mac = hmac.digest(self.media_key, b"%d.%d" % (photo_id, holder_id), hashlib.sha256)
        return base64.urlsafe_b64encode(mac[:HOLDER_TAG_BYTES]).decode()

    def _holder(self, photo_id: int, access: str) -> tuple[str, int | None] | None:
        """(secret, holder id or None) of a URL's ``access``; None when its tag is wrong."""
        secret, *bound = access.split(".")
        if not bound:
            return secret, None
        if len(bound) != 2 or not (bound[0].isascii() and bound[0].isdigit()) or len(bound[0]) > 19:
            return None  # an id is at most 19 digits (a signed 64-bit integer)
        holder_id = int(bound[0])
        # SECURITY: constant-time check of the tag: a holder cannot be swapped for another.
        if not hmac.compare_digest(
            bound[1].encode(), self._holder_tag(photo_id, holder_id).encode()
        ):
            return None
        return secret, holder_id

    async def _holder_may_see(self, photo: Photo, holder_id: int | None) -> bool:
        """Whether the URL's holder (None: anyone) may see the photo now: access taken away
        (an account turned private, a follow ended, a photo deleted) is taken away from
        media URLs handed out before, at once here and within the record and owner caches'
        few seconds on other hosts."""
        holder = None if holder_id is None else await self.audience(None).owner(holder_id)
        if holder_id is not None and holder is None:
            return False
        return await self.audience(holder).can_see(photo)

    async def media(self, viewer: User | None, photo_id: int, access: str, name: str) -> MediaGrant:
        """The rendition ``name`` of a media URL whose ``access`` is the photo's secret,
        alone or bound to its holder (``access``). ``NotFound`` for a missing photo, a
        wrong secret or tag and a holder who may no longer see the photo alike; the
        owner's renditions need the owner's token."""
        holder = self._holder(photo_id, access)
        try:
            photo: Photo | None = await self.photos.get_for_media(photo_id)
        except NotFound:
            photo = None
        # SECURITY: constant-time comparison of the URL's secret; a missing photo and a
        # wrong secret get the same answer, so a guessed id tells nothing.
        if (
            photo is None
            or holder is None
            or not hmac.compare_digest(holder[0].encode(), photo.secret.encode())
            or not await self._holder_may_see(photo, holder[1])
        ):
            raise NotFound(f"no media {photo_id}/{name}")
        rendition = photo.rendition(name)
        if rendition is None:
            raise NotFound(f"photo {photo.id} has no {name!r} rendition")
        if rendition not in allowed_renditions(photo, viewer):
            what = "original upload" if name == "original" else f"{name!r} rendition"
            if viewer is None:
                raise NotAuthenticated(
                    f"the {what} is for its owner only: send the owner's bearer token"
                )
            raise NotAllowed(f"the {what} is for its owner only")
        return MediaGrant(photo, rendition, await self._shared(photo, rendition))

    async def _shared(self, photo: Photo, rendition: Rendition) -> bool:
        """Whether shared caches may keep these bytes: a public photo of a public account."""
        if rendition not in allowed_renditions(photo, None):
            return False
        if photo.visibility is not Visibility.PUBLIC:
            return False
        owner = await self.audience(None).owner(photo.owner_id)
        # SECURITY: the owner's current state, not the photo's alone.
        return owner is not None and not owner.private

    def in_memory(self, grant: MediaGrant) -> bool:
        """Whether the rendition is small enough to be served whole from memory."""
        return self.photos.media.fits(grant.rendition.size)

    async def whole(self, grant: MediaGrant) -> bytes:
        """All of a small rendition's bytes, from memory or read once into it;
        ``Unavailable`` (and nothing cached) when the store fails or falls short."""
        data = self.photos.media.get(_media_key(grant))
        if data is None:
            data, _ = await self.fetched(grant)
        return data

    # ---- media kept in memory, with what the server derives from it ------------------

    def held(self, grant: MediaGrant) -> tuple[bytes, dict[Hashable, Any]] | None:
        """A small rendition's bytes if the media cache holds them (a counted lookup), and
        the dict kept beside them (the server's ready answers: dropped with the bytes, on
        eviction and by ``Photos.delete``); None when not held or too large to hold."""
        if not self.in_memory(grant):
            return None
        return self.photos.media.held(_media_key(grant))

    async def fetched(self, grant: MediaGrant) -> tuple[bytes, dict[Hashable, Any] | None]:
        """A small rendition's bytes read from the blob store and kept in memory, and the
        dict kept beside them (None if they were not kept); ``Unavailable`` (and nothing
        kept) when the store fails or falls short."""
        rendition = grant.rendition
        try:
            data = b"".join([c async for c in volumes.open_locator(self.blobs, rendition.locator)])
        except InstastoreError as exc:
            raise unreadable(rendition, exc) from exc
        if len(data) != rendition.size:
            short = StorageError(f"{len(data):,} of {rendition.size:,} bytes")
            raise unreadable(rendition, short)
        return data, self.photos.media.put(_media_key(grant), data)

    def chunks(self, grant: MediaGrant, offset: int, length: int) -> AsyncIterator[bytes]:
        """``length`` bytes of the rendition from ``offset``, streamed from the blob store;
        a failure raises ``InstastoreError`` when it happens (see ``unreadable``)."""
        return volumes.open_locator(self.blobs, grant.rendition.locator, offset, length)

    # ---- pages of photos other services list --------------------------------------------

    async def cards_page(self, audience: Audience, page: Page[Photo]) -> Page[PhotoCard]:
        """The cards of a page of photos ``audience`` may see (a tag's page)."""
        return await self._page(audience, page)

    # ---- counts as the viewer sees them ----------------------------------------------
    # SECURITY: a count leaves out what an account a block stands between the viewer and
    # did (``Audience.walls``), as every list leaves that account out: the blocked learn
    # nothing from a count they could not learn as a stranger, whose counts and lists
    # both hold it.

    async def _like_counts(self, audience: Audience, photo_ids: list[int]) -> dict[int, int]:
        counts, walls = await asyncio.gather(self.likes.like_counts(photo_ids), audience.walls())
        if walls:
            walled = await self.likes.like_counts_among(photo_ids, list(walls))
            counts = {p: max(0, n - walled.get(p, 0)) for p, n in counts.items()}
        return counts

    async def _seen_comment_counts(
        self, audience: Audience, photo_ids: list[int]
    ) -> dict[int, int]:
        counts, walls = await asyncio.gather(self._comment_counts(photo_ids), audience.walls())
        commented = [p for p in photo_ids if counts.get(p)]
        if walls and commented and self.comments is not None:
            walled = await self.comments.comment_counts_among(commented, list(walls))
            counts = {p: max(0, n - walled.get(p, 0)) for p, n in counts.items()}
        return counts

    async def _follow_counts(self, audience: Audience, profile: Profile) -> tuple[int, int]:
        """A profile's (followers, following), less the viewer's walls among them."""
        walls = await audience.walls()
        if not walls:
            return profile.followers, profile.following
        followers, following = await self.social.graph.follows_among(profile.user.id, list(walls))
        return (
            max(0, profile.followers - len(followers)),
            max(0, profile.following - len(following)),
        )
