"""Comments on photos: add, list oldest first, delete; who may do which.

- A photo's comments follow the photo (``Viewing.photo``): a viewer who may not see it
  gets ``NotFound`` for its comments, in the words of a missing photo, whatever they ask
  (list, add, delete), so nobody learns from its comments that a hidden photo exists.
- Who may comment on a photo they see, and which comments a viewer is shown, is decided
  here alone (``may_comment``, ``shown``): today everyone signed in who sees the photo,
  and every comment; a rule that hides some (blocks, moderation) goes in those two.
- A comment is deleted by its author or by the photo's owner, for good: it is removed,
  not marked (nobody undoes a deletion, and words a user took back are not kept). A
  comment the viewer is shown but may not delete is ``NotAllowed``; one they are not
  shown, or that is gone, ``NotFound``.
- Text: trimmed, not blank, at most ``max_comment_chars``, and checked as titles are
  (``instastore.text``: control, bidi and invisible format characters refused).
- Each user posts at most ``comments_per_minute`` on all hosts together (``SharedLimit``).
- The count on a photo is the store's (``CommentStore.comment_counts``): a counter on
  Cassandra raised once a comment's claim applied, so a retry never counts one twice.

It never speaks HTTP, and reaches the stores only through the ``CommentStore`` port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from instastore import ids
from instastore.errors import InvalidInput, NotAllowed, NotFound
from instastore.ids import IdGenerator
from instastore.model import Comment, Photo, User
from instastore.paging import Cursors, Page, Scope, clamp_limit, fill_page
from instastore.ratelimit import SharedLimit
from instastore.social import Audience
from instastore.storage.ports import CommentStore
from instastore.text import check_text
from instastore.viewing import Viewing, owns


@dataclass(frozen=True)
class CommentCard:
    """A comment as one viewer sees it: with its author (None: the record is gone)."""

    comment: Comment
    author: User | None
    mentions: tuple[User, ...] = ()  # the accounts its text mentions (``@name``)


def check_comment_text(text: object, max_chars: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("text is required: a comment is not blank")
    text = text.strip()
    if len(text) > max_chars:
        raise InvalidInput(f"text is {len(text)} characters; the limit is {max_chars}")
    return check_text(text, "text")


def comments_scope(photo_id: int, viewer: User | None) -> Scope:
    """A photo's comments as one viewer reads them (what is shown may depend on who)."""
    return Scope("comments", (photo_id, viewer.id if viewer else 0))


class Comments:
    def __init__(
        self,
        store: CommentStore,
        viewing: Viewing,
        id_generator: IdGenerator,
        limit: SharedLimit,
        max_chars: int,
        cursors: Cursors,
        max_page: int = 100,
    ) -> None:
        self.store = store
        self.viewing = viewing
        self.ids = id_generator
        self.limit = limit  # comments per user per minute, on every host
        self.max_chars = max_chars
        self.cursors = cursors
        self.max_page = max_page
        # Told of a comment before it is stored (the activity inbox's events, shown once
        # it stands); answers the accounts its text mentions.
        self.on_comment: Callable[[User, Photo, Comment], Awaitable[list[User]]] | None = None
        # The accounts each of some texts mentions (a page's comments, read together).
        self.mentions_of: Callable[[list[str]], Awaitable[list[list[User]]]] | None = None

    # ---- the rules: who may comment, which comments are shown ----------------------

    async def may_comment(self, audience: Audience, photo: Photo) -> bool:
        """Whether ``audience``'s viewer, who sees ``photo``, may comment on it."""
        return audience.viewer is not None

    async def shown(self, audience: Audience, comments: list[Comment]) -> list[Comment]:
        """The comments of a photo the viewer sees that they are shown: not those an
        operator hid (but to their author), nor those of an author hidden from the viewer
        (a block either way, a takedown)."""
        await audience.read_items([c.id for c in comments], [c.author_id for c in comments])
        keep = await asyncio.gather(*(audience.shown_item(c.id, c.author_id) for c in comments))
        return [c for c, ok in zip(comments, keep, strict=True) if ok]

    # ---- operations ----------------------------------------------------------------

    async def add(self, viewer: User, photo_id: int, text: object) -> CommentCard:
        text = check_comment_text(text, self.max_chars)
        photo, audience = await self.viewing.visible(viewer, photo_id)
        if not await self.may_comment(audience, photo):
            raise NotAllowed("you may not comment on this photo")
        # SECURITY: counted on every host, after the checks, so a refused comment spends nothing.
        await self.limit.take(viewer.id, "comments")
        comment_id = self.ids.next_id()
        # Its time is its id's (whole milliseconds, as both stores keep a time).
        comment = Comment(comment_id, photo.id, viewer.id, text, ids.created_at(comment_id))
        named = [] if self.on_comment is None else await self.on_comment(viewer, photo, comment)
        await self.store.add_comment(comment)
        return CommentCard(comment, viewer, tuple(named))

    async def page(
        self, viewer: User | None, photo_id: int, cursor: str | None, limit: int
    ) -> Page[CommentCard]:
        """A page of the photo's comments, oldest first."""
        photo, audience = await self.viewing.visible(viewer, photo_id)
        scope = comments_scope(photo.id, viewer)
        found, last = await fill_page(
            lambda after, n: self.store.comments(photo.id, after, n),
            lambda rows: self.shown(audience, rows),
            lambda comment: comment.id,
            lambda comment: comment.id,
            self.cursors.decode_cursor(cursor, scope),
            clamp_limit(limit, self.max_page),
        )
        next_cursor = None if last is None else self.cursors.encode_cursor(last, scope)
        return Page(await self._cards(audience, found), next_cursor)

    async def delete(self, viewer: User, photo_id: int, comment_id: int) -> None:
        """Remove a comment: its author or the photo's owner."""
        photo, audience = await self.viewing.visible(viewer, photo_id)
        comment = await self.store.get_comment(photo.id, comment_id)
        if comment is None or not await self.shown(audience, [comment]):
            raise NotFound(f"no comment {comment_id} on photo {photo_id}")
        if comment.author_id != viewer.id and not owns(viewer, photo):
            raise NotAllowed("only the comment's author or the photo's owner may delete it")
        await self.store.delete_comment(comment)

    async def _cards(self, audience: Audience, comments: list[Comment]) -> list[CommentCard]:
        author_ids = list({c.author_id for c in comments})
        authors = await asyncio.gather(*(audience.owner(a) for a in author_ids))
        by_id = dict(zip(author_ids, authors, strict=True))
        texts = [c.text for c in comments]
        named = await self.mentions_of(texts) if self.mentions_of else [[] for _ in texts]
        # SECURITY: an account hidden from the viewer is not named to them in a comment.
        named = await audience.shown_mentions(named)
        return [
            CommentCard(c, by_id[c.author_id], tuple(n))
            for c, n in zip(comments, named, strict=True)
        ]

    async def shown_comment(self, viewer: User, photo_id: int, comment_id: int) -> Comment:
        """A comment the viewer is shown, on a photo they see; ``NotFound`` otherwise
        (for a photo, in the words of a missing one)."""
        _photo, audience = await self.viewing.visible(viewer, photo_id)
        comment = await self.store.get_comment(photo_id, comment_id)
        if comment is None or not await self.shown(audience, [comment]):
            raise NotFound(f"no comment {comment_id} on photo {photo_id}")
        return comment
