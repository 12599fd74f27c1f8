"""Each user's activity inbox: what happened to them, newest first, and how much of it
they have not read.

- Events: a like of their photo, a comment on it, a mention of them (``@name`` in a
  photo's title or in a comment), a new follower, a follow request, a request of theirs
  approved. Nobody is told of what they did themselves.
- A mention is written only for an account that may see what mentions it, then.
- Written ahead, on the action's own path: the event before the like, comment, follow,
  request or approval is stored, and the action answered only after both, so an action
  whose answer the client got has its event (an event whose action never landed is left
  out, below). The mentions of a title are written as its upload is answered, a replay
  of its Idempotency-Key included; those a title edit adds, before the edit is stored
  (``retitled``: under an id claimed per photo and account). Every event id is fixed by
  its action, so a retry, or the action done twice, lands on the same row: a comment's
  event is the comment's id, a mention in a title the photo's id, and an action without
  an id of its own (a like, a follow, a request, an approval) claims one once
  (``ActivityStore.claim_event_id``, keyed by what it is and who did it) and keeps it
  for ``activity_days``, so liking, unliking and liking again notifies once.
- Rows are never taken back: what the reader may no longer see is left out when the
  inbox is read (``shown``), so a change that a crash cut short can never leave an event
  behind. Left out: an event whose actor is gone; one about a photo that is deleted,
  purged, or hidden from the reader now; a like undone, a comment deleted, a follow
  ended, a request no longer pending, a mention edited away, and an action that never
  landed. A page reads past what it leaves out (``PAGE_ROUNDS``).
- Unread: the events past the user's read mark that ``shown`` keeps, counted up to
  ``MAX_UNREAD`` (a count of what is left out would tell what the reader may not see).
  The mark only rises, to at most the newest event (``mark_read``).

It never speaks HTTP, and reaches the stores only through its ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from instastore import ids
from instastore.errors import InvalidInput
from instastore.ids import IdGenerator
from instastore.model import Comment, Photo, User
from instastore.paging import Cursors, Page, Scope, clamp_limit
from instastore.social import Audience
from instastore.storage.ports import (
    AccountStore,
    ActivityEvent,
    ActivityStore,
    CommentStore,
    FollowGraph,
    LikeStore,
    PhotoStore,
)
from instastore.text import mentions

PHOTO_KINDS = frozenset({"like", "comment", "mention"})
MAX_UNREAD = 99  # a badge shows "99+": counting further reads rows nobody looks at
UNREAD_PAGE = 50  # events read per step of the unread count
UNREAD_SCAN = 200  # events past the mark the count reads at most (then it says "more")
PAGE_ROUNDS = 3  # reads of up to a page of rows each that one page of the inbox makes at most


@dataclass(frozen=True)
class ActivityCard:
    """An event as its reader sees it: who did it, the photo it is about (None: none),
    and whether it is past the reader's read mark."""

    event: ActivityEvent
    actor: User
    photo: Photo | None
    unread: bool


@dataclass(frozen=True)
class Unread:
    count: int  # at most MAX_UNREAD
    more: bool  # there may be more than ``count``


def activity_scope(reader: User) -> Scope:
    return Scope("activity", (reader.id,))


class Activity:
    def __init__(
        self,
        store: ActivityStore,
        accounts: AccountStore,
        photos: PhotoStore,
        likes: LikeStore,
        comments: CommentStore,
        graph: FollowGraph,
        audience: Callable[[User | None], Audience],
        id_generator: IdGenerator,
        cursors: Cursors,
        days: int,
        max_mentions: int,
        max_page: int = 100,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.photos = photos
        self.likes = likes
        self.comments = comments
        self.graph = graph
        self.audience = audience  # who may see what (``Viewing.audience``: shared caches)
        self.ids = id_generator
        self.cursors = cursors
        self.days = days  # how long an event is kept (activity_days)
        self.max_mentions = max_mentions
        self.max_page = max_page

    # ---- writes: one per kind of action, before the action is stored -----------------

    async def liked(self, actor: User, photo: Photo) -> None:
        if actor.id != photo.owner_id:
            await self._claimed(
                photo.owner_id, f"like:{photo.id}:{actor.id}", "like", actor.id, photo.id
            )

    async def commented(self, actor: User, photo: Photo, comment: Comment) -> list[User]:
        """The comment's events: its photo's owner's, and a mention for each account the
        text names (but its author and the owner, who is told of the comment); the
        accounts it mentions, for the answer."""
        named = await self._named_by(actor, comment.text)
        told = await self._seeing(
            [u for u in named if u.id not in (actor.id, photo.owner_id)], photo
        )
        events = [
            ActivityEvent(u.id, comment.id, "mention", actor.id, photo.id, comment.id) for u in told
        ]
        if actor.id != photo.owner_id:
            events.append(
                ActivityEvent(photo.owner_id, comment.id, "comment", actor.id, photo.id, comment.id)
            )
        await self._write(events)
        return named

    async def titled(self, owner: User, photo: Photo) -> list[User]:
        """A mention for each account a photo's title names (but its owner); the accounts
        it mentions."""
        named = await self._named_by(owner, photo.title)
        told = await self._seeing([u for u in named if u.id != owner.id], photo)
        await self._write(
            ActivityEvent(u.id, photo.id, "mention", owner.id, photo.id) for u in told
        )
        return named

    async def tell(self, kind: str, actor: User, other: User) -> None:
        """A follow, a follow request or an approval (``kind``) by ``actor`` of ``other``."""
        if kind not in ("follow", "request", "approved"):
            raise ValueError(f"{kind!r} is not an event between two accounts")
        await self._claimed(other.id, f"{kind}:{actor.id}", kind, actor.id)

    async def mentioned(self, text: str) -> list[User]:
        """The existing accounts ``text`` mentions (at most ``max_mentions`` names), in
        order of first mention."""
        (found,) = await self.mentions_of([text])
        return found

    async def _named_by(self, author: User, text: str) -> list[User]:
        """The accounts ``text`` mentions that its author may name: one hidden from the
        author (a block either way, a takedown) is neither told nor linked."""
        (named,) = await self.audience(author).shown_mentions([await self.mentioned(text)])
        return named

    async def mentions_of(self, texts: list[str]) -> list[list[User]]:
        """``mentioned`` of each text, each name read once for them all."""
        names = [mentions(t, self.max_mentions) for t in texts]
        unique = list({n for found in names for n in found})
        users = await asyncio.gather(*(self.accounts.get_user_by_name(n) for n in unique))
        by_name = {n: u for n, u in zip(unique, users, strict=True) if u is not None}
        return [[by_name[n] for n in found if n in by_name] for found in names]

    async def _seeing(self, users: list[User], photo: Photo) -> list[User]:
        """Those of ``users`` who may see ``photo`` now: nobody is told of a mention in
        what they may not read (the inbox checks again when it is read)."""
        sees = await asyncio.gather(*(self.audience(u).can_see(photo) for u in users))
        return [u for u, ok in zip(users, sees, strict=True) if ok]

    def _until(self, event_id: int) -> datetime:
        return ids.created_at(event_id) + timedelta(days=self.days)

    async def _claimed(
        self, user_id: int, action: str, kind: str, actor_id: int, photo_id: int = 0
    ) -> None:
        candidate = self.ids.next_id()
        event_id = await self.store.claim_event_id(
            user_id, action, candidate, self._until(candidate)
        )
        await self._write([ActivityEvent(user_id, event_id, kind, actor_id, photo_id)])

    async def _write(self, events: Iterable[ActivityEvent]) -> None:
        await asyncio.gather(*(self.store.add_event(e, self._until(e.event_id)) for e in events))

    # ---- reads ---------------------------------------------------------------------

    async def page(self, reader: User, cursor: str | None, limit: int) -> Page[ActivityCard]:
        """A page of the reader's inbox, newest first. Rows left out (``shown``) are read
        past, up to ``PAGE_ROUNDS`` reads, so a page is short only at the inbox's end or
        when that many reads found too few: how much is left out shows in no page's size."""
        scope = activity_scope(reader)
        limit = clamp_limit(limit, self.max_page)
        before = self.cursors.decode_cursor(cursor, scope)
        seen = await self.store.seen_mark(reader.id)
        cards: list[ActivityCard] = []
        for _ in range(PAGE_ROUNDS):
            rows = await self.store.events(reader.id, before, 0, limit + 1)
            window = rows[:limit]
            shown = await self.shown(reader, window, seen)
            room = limit - len(cards)
            cards += shown[:room]
            if len(shown) > room:  # full before this read's end: go on after its last card
                return Page(cards, self.cursors.encode_cursor(cards[-1].event.event_id, scope))
            if len(rows) <= limit:
                return Page(cards, None)  # the inbox ends here
            before = window[-1].event_id
            if len(cards) == limit:
                break
        return Page(cards, self.cursors.encode_cursor(before, scope))  # type: ignore[arg-type]

    async def unread(self, reader: User) -> Unread:
        """The events past the reader's read mark that they are shown, up to MAX_UNREAD."""
        seen = await self.store.seen_mark(reader.id)
        count, scanned, before = 0, 0, None
        while True:
            rows = await self.store.events(reader.id, before, seen, UNREAD_PAGE)
            scanned += len(rows)
            count += len(await self.shown(reader, rows, seen))
            if len(rows) < UNREAD_PAGE:
                return Unread(min(count, MAX_UNREAD), count > MAX_UNREAD)
            if count >= MAX_UNREAD or scanned >= UNREAD_SCAN:
                return Unread(min(count, MAX_UNREAD), True)
            before = rows[-1].event_id

    async def mark_read(self, reader: User, up_to: int | None) -> int:
        """Mark the reader's events up to ``up_to`` read (None: all of them), never past
        their newest event (a mark ahead of it would swallow events still to come) nor
        back; the mark after."""
        if up_to is not None and not 0 < up_to <= ids.MAX_ID:
            raise InvalidInput(f"up_to must be an event id from 1 to {ids.MAX_ID}")
        newest, seen = await asyncio.gather(
            self.store.events(reader.id, None, 0, 1), self.store.seen_mark(reader.id)
        )
        target = newest[0].event_id if newest else 0
        if up_to is not None:
            target = min(target, up_to)
        if target > seen:
            await self.store.mark_seen(reader.id, target)
        return max(target, seen)

    # ---- the rule: which events a reader is shown ---------------------------------

    async def shown(
        self, reader: User, events: list[ActivityEvent], seen: int
    ) -> list[ActivityCard]:
        """The cards of the events the reader may see now, in their order. The one place
        that decides it: a rule that hides more (blocks, moderation) goes here."""
        audience = self.audience(reader)
        actor_ids = list({e.actor_id for e in events})
        photo_ids = list({e.photo_id for e in events if e.kind in PHOTO_KINDS})
        actors, photos, standing = await asyncio.gather(
            asyncio.gather(*(audience.owner(a) for a in actor_ids)),
            self.photos.get_photos(photo_ids),
            asyncio.gather(*(self._stands(reader, e) for e in events)),
        )
        # An actor hidden from the reader (a block either way, a takedown) is as gone.
        shown = {u.id for u in await audience.shown_users([a for a in actors if a is not None])}
        by_id = {i: a for i, a in zip(actor_ids, actors, strict=True) if i in shown}
        live = [p for p in photos.values() if p.deleted_at is None]
        visible = {p.id: p for p in await audience.filter(live)}
        cards = []
        for event, stands in zip(events, standing, strict=True):
            actor = by_id.get(event.actor_id)
            photo = visible.get(event.photo_id) if event.kind in PHOTO_KINDS else None
            if not stands or actor is None or (event.kind in PHOTO_KINDS and photo is None):
                continue
            if photo is not None and not self._still_named(reader, event, photo):
                continue
            cards.append(ActivityCard(event, actor, photo, event.event_id > seen))
        return cards

    def _still_named(self, reader: User, event: ActivityEvent, photo: Photo) -> bool:
        """A mention in a title stands while the title, as it is now, names the reader."""
        if event.kind != "mention" or event.comment_id:
            return True
        return reader.username in mentions(photo.title, self.max_mentions)

    async def _stands(self, reader: User, event: ActivityEvent) -> bool:
        """Whether the action behind ``event`` still stands (a read of it)."""
        if event.kind == "like":
            return event.photo_id in await self.likes.liked_by(event.actor_id, [event.photo_id])
        if event.comment_id:
            found = await self.comments.get_comment(event.photo_id, event.comment_id)
            return found is not None
        if event.kind == "follow":
            return await self.graph.is_following(event.actor_id, reader.id)
        if event.kind == "request":
            return await self.graph.has_follow_request(reader.id, event.actor_id)
        if event.kind == "approved":
            return await self.graph.is_following(reader.id, event.actor_id)
        return event.kind == "mention"  # in a title: the title is checked with the photo

    # ---- a title edit ------------------------------------------------------------------

    async def retitled(self, owner: User, photo: Photo, title: str) -> list[User]:
        """A mention for each account ``title`` names and the photo's title as it is does
        not (but its owner), written before the edit is stored: shown only once the title
        names them (``_still_named``), and under an id claimed once per photo and
        account, so a retry, or naming them again, tells them once. One named by the
        upload (its event is the photo's id) is told by that event again. The accounts
        ``title`` mentions."""
        named = await self._named_by(owner, title)
        before = set(mentions(photo.title, self.max_mentions))
        told = await self._seeing(
            [u for u in named if u.id != owner.id and u.username not in before], photo
        )
        for user in told:
            if not await self.store.events(user.id, photo.id + 1, photo.id - 1, 1):
                await self._claimed(user.id, f"mention:{photo.id}", "mention", owner.id, photo.id)
        return named
