"""Blocking an account: block, unblock, list one's blocks.

A block hides each of the two accounts from the other (``social.Audience.hides_user``):
photos, profile, follow lists, likers, comments and search, each answering as for a
missing account, so the blocked cannot tell a block from a deleted or never-made one;
the counts each sees leave out what the other did (``Audience.walls``), and thinned
lists read on to fill their pages (``paging.fill_page``).
The blocker still names the blocked in its own list of blocks and may unblock them.

Blocking ends the follows between the two both ways and their follow requests both
ways (``BlockStore.block``: on SQLite one transaction; on Cassandra the block rows first,
then each follow as an unfollow ends it; blocking again finishes a block cut short).
Unblocking restores nothing: who wants to follow again asks again. A follow written
while a block is made is caught by the follow itself (``Social.follow`` reads the blocks
again once it is written); until then visibility reads the block, not the follow.

Who may be blocked: anyone but oneself, and but an account that blocks the viewer or
that an operator hid (those are missing to the viewer: ``NotFound``, as for no account).
The timeline drops a blocked account's photos because the follows end (it shows
followees' photos only) and each reader's followee cache is dropped at once here.

It never speaks HTTP, and reaches the store only through the ``BlockStore`` port.
"""

from __future__ import annotations

import asyncio

from instastore.clock import utcnow
from instastore.errors import InvalidInput, NotFound
from instastore.model import User
from instastore.paging import Cursors, Page, Scope, clamp_limit
from instastore.social import Social
from instastore.storage.ports import BlockStore


class Blocks:
    def __init__(self, store: BlockStore, social: Social, cursors: Cursors, max_page: int) -> None:
        self.store = store
        self.social = social
        self.cursors = cursors
        self.max_page = max_page

    async def _other(self, me: User, username: str) -> User:
        """The account ``me`` names, unless it is missing to ``me``; ``me``'s own blocks
        do not hide it here (they are what is being changed)."""
        other = await self.social.accounts.get_user_by_name(username)
        # SECURITY: an account that blocks ``me``, or that an operator hid, is missing.
        if other is None or await self.social.audience(me).shuts_out(other):
            raise NotFound(f"no user {username!r}")
        return other

    async def block(self, me: User, username: str) -> None:
        """Block ``username`` (idempotent: blocking again finishes a block cut short)."""
        other = await self._other(me, username)
        if other.id == me.id:
            raise InvalidInput("you cannot block yourself")
        await self.store.block(me.id, other.id, utcnow())
        self.social._follows_changed(me.id)
        self.social._follows_changed(other.id)

    async def unblock(self, me: User, username: str) -> None:
        """Unblock ``username`` (idempotent: one not blocked is no error)."""
        other = await self.social.accounts.get_user_by_name(username)
        if other is not None and await self.store.unblock(me.id, other.id):
            return
        await self._other(me, username)  # NotFound for what is missing to ``me``

    async def page(self, me: User, cursor: str | None, limit: int) -> Page[User]:
        """The accounts ``me`` blocks, in id order; its cursors are ``me``'s."""
        scope = Scope("blocks", (me.id,))
        limit = clamp_limit(limit, self.max_page)
        ids = await self.store.blocked(me.id, self.cursors.decode_cursor(cursor, scope), limit + 1)
        more = len(ids) > limit
        ids = ids[:limit]
        users = await asyncio.gather(*(self.social.accounts.get_user(i) for i in ids))
        return Page(
            [u for u in users if u is not None],
            self.cursors.encode_cursor(ids[-1], scope) if more else None,
        )
