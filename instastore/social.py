"""The social graph and who may see what.

Following a public account takes effect at once; following a private one files a
request that its owner approves. Visibility of a photo to a viewer:

- its owner sees everything;
- ``private`` photos: nobody else;
- ``followers`` photos, and every photo of a private account: followers only;
- ``public`` photos of public accounts: everyone, signed in or not.

One user follows at most ``max_following`` accounts (a setting, 7,500 by default):
following, asking to follow, or being approved past it is ``LimitReached`` (409), and an
approval refused so keeps its request. The cap bounds what a home timeline reads (it
reads the whole followee list), but nothing is hidden by it: several hosts may overshoot
it a little (see ``Social._check_room``), and an operator may lower it below what users
already follow.

A private account declines a request (it goes, and the requester may ask again) and
removes a follower (the follow ends; their timeline drops the account's photos as an
unfollow does). Accounts are found by a prefix of their username, in username order,
private ones too: a profile names them to anyone.

Who follows a private account and whom it follows is for its owner and approved
followers only; anyone else (signed in or not) gets ``NotAllowed`` "this account is
private", the same answer whether the lists are empty or not. (A list of photos is
filtered photo by photo instead, so an outsider sees an empty page.)

Blocks and takedowns are decided here too, in ``Audience``: an account blocked either
way, or hidden by an operator, is as missing to the viewer (``hides_user``), and with
it its photos, its lists and its name in other lists; a photo or comment an operator hid
is missing to all but its owner (``instastore.blocks``, ``instastore.moderation``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from instastore.accounts import USERNAME
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import Conflict, InvalidInput, LimitReached, NotAllowed, NotFound
from instastore.hotcache import TtlCache
from instastore.limits import USERNAME_PREFIX_CHARS
from instastore.model import Photo, User, Visibility
from instastore.paging import Cursors, Page, Scope, clamp_limit, fill_page
from instastore.storage.ports import AccountStore, BlockStore, FollowGraph, ModerationStore

FollowState = Literal["following", "requested"]


@dataclass(frozen=True)
class Relation:
    """Where one user stands with another: follows them, or asked to."""

    following: bool
    requested: bool


class Social:
    def __init__(
        self,
        accounts: AccountStore,
        graph: FollowGraph,
        max_page: int = 100,
        clock: Callable[[], datetime] = utcnow,
        cursors: Cursors | None = None,
        max_following: int = Settings.max_following,
        blocks: BlockStore | None = None,
        moderation: ModerationStore | None = None,
    ) -> None:
        self.accounts = accounts
        self.graph = graph
        self.blocks = blocks  # blocks between accounts (None: none)
        self.moderation = moderation  # accounts, photos and comments operators hid
        # Whether an item is hidden, by item id, for every request of this process: a
        # takedown reaches the media route's every read without a read of its own (here
        # at once through ``Moderation.on_change``, other processes within RECORD_TTL_S).
        self.hidden_items: TtlCache[int, bool] = TtlCache("hidden_items")
        self.max_page = max_page
        self.max_following = max_following  # followees per user (the setting)
        self.clock = clock
        # Seals the cursors of its lists (by default under a random key of its own).
        self.cursors = cursors or Cursors()
        # Told of a user whose followees changed (caches of their timeline drop it).
        self.on_follows_change: Callable[[int], None] | None = None
        # Told of a follow, a request or an approval (its kind, who, to whom) before it is
        # stored: the activity inbox's event, which the inbox shows once the change stands.
        self.on_activity: Callable[[str, User, User], Awaitable[None]] | None = None

    def _follows_changed(self, user_id: int) -> None:
        if self.on_follows_change is not None:
            self.on_follows_change(user_id)

    async def relation(self, me: User, other: User) -> Relation:
        """Whether ``me`` follows ``other``, and whether ``me`` asked to (pending)."""
        following, requested = await asyncio.gather(
            self.graph.is_following(me.id, other.id),
            self.graph.has_follow_request(other.id, me.id),
        )
        return Relation(following, requested)

    async def _user(self, username: str, viewer: User | None = None) -> User:
        """The user of that name, as ``viewer`` may name them: one hidden from the viewer
        (``Audience.hides_user``: a block either way, an operator's hiding) is
        ``NotFound`` in the words of a missing one."""
        user = await self.accounts.get_user_by_name(username)
        # SECURITY: a block or a takedown is not told from a missing account.
        if user is None or (viewer is not None and await self.audience(viewer).hides_user(user)):
            raise NotFound(f"no user {username!r}")
        return user

    async def follow(self, me: User, username: str) -> FollowState:
        other = await self._user(username)
        if other.id == me.id:
            raise InvalidInput("you cannot follow yourself")
        audience = self.audience(me)
        if await audience.shuts_out(other):
            raise NotFound(f"no user {username!r}")
        if (await audience.wall(other)).viewer_blocks:
            raise Conflict(f"you block {username}: unblock them to follow them")
        if await self.graph.is_following(me.id, other.id):
            return "following"
        await self._check_room(me, "you follow")
        await self._tell("request" if other.private else "follow", me, other)
        if other.private:
            await self.graph.add_follow_request(other.id, me.id, self.clock())
            await self._undo_if_blocked(me, other)
            return "requested"
        await self.graph.follow(me.id, other.id, self.clock())
        self._follows_changed(me.id)
        await self._undo_if_blocked(me, other)
        return "following"

    async def _undo_if_blocked(self, me: User, other: User) -> None:
        """A block made while this follow (or request) was written ended the follows it
        read, not this one: read the blocks again, and end it if one is there now."""
        if not await self.audience(me).hides_user(other):
            return
        await self.graph.unfollow(me.id, other.id)
        await self.graph.remove_follow_request(other.id, me.id)
        self._follows_changed(me.id)
        raise NotFound(f"no user {other.username!r}")

    async def unfollow(self, me: User, username: str) -> None:
        other = await self._user(username, me)
        await self.graph.unfollow(me.id, other.id)
        await self.graph.remove_follow_request(other.id, me.id)
        self._follows_changed(me.id)

    async def approve(self, me: User, username: str) -> User:
        """Approve a pending request; the requester (who now follows ``me``)."""
        requester = await self._user(username, me)
        if not await self.graph.has_follow_request(me.id, requester.id):
            raise NotFound(f"no pending follow request from {username!r}")
        if not await self.graph.is_following(requester.id, me.id):  # else it adds none
            await self._check_room(requester, f"{username} follows", "; the request stays")
        await self._tell("approved", me, requester)
        if not await self.graph.remove_follow_request(me.id, requester.id):
            raise NotFound(f"no pending follow request from {username!r}")
        await self.graph.follow(requester.id, me.id, self.clock())
        self._follows_changed(requester.id)
        return requester

    async def decline(self, me: User, username: str) -> None:
        """Decline a pending request; ``NotFound`` when there is none."""
        requester = await self._user(username, me)
        if not await self.graph.remove_follow_request(me.id, requester.id):
            raise NotFound(f"no pending follow request from {username!r}")

    async def remove_follower(self, me: User, username: str) -> None:
        """End ``username``'s follow of ``me`` (idempotent: one who does not follow is
        no error). Their timeline caches drop ``me`` here at once, and other hosts'
        within the follow check's few seconds, as for an unfollow."""
        follower = await self._user(username, me)
        await self.graph.unfollow(follower.id, me.id)
        self._follows_changed(follower.id)

    async def search_users(
        self, prefix: str, cursor: str | None, limit: int, viewer: User | None = None
    ) -> Page[User]:
        """Accounts whose username starts with ``prefix`` (folded to lower case), in
        username order. Anyone may list them: a profile names any account, private or not.
        Its cursors are the prefix's, whoever reads."""
        prefix = prefix.lower()
        if len(prefix) < USERNAME_PREFIX_CHARS or not USERNAME.fullmatch(prefix.ljust(3, "_")):
            raise InvalidInput(
                f"q must be the first {USERNAME_PREFIX_CHARS} to 30 characters of a username "
                "(a-z, 0-9, '_' and '.')"
            )
        scope = Scope("user search", (prefix,))
        audience = self.audience(viewer)

        async def shown(rows: list[tuple[str, int]]) -> list[User]:
            found = await asyncio.gather(*(self.accounts.get_user(i) for _, i in rows))
            # A row of an account whose creation never finished names no user, or a user
            # of another name: skipped (the cursor still goes on after it).
            named = zip((name for name, _ in rows), found, strict=True)
            return await audience.shown_users(
                [u for name, u in named if u is not None and u.username == name]
            )

        users, last = await fill_page(
            lambda after, n: self.accounts.usernames_from(prefix, after, n),
            shown,
            lambda row: row[0],
            lambda user: user.username,
            self.cursors.decode_name_cursor(cursor, scope),
            clamp_limit(limit, self.max_page),
        )
        return Page(users, None if last is None else self.cursors.encode_name_cursor(last, scope))

    async def _check_room(self, follower: User, who: str, then: str = "") -> None:
        """Refuse a follow (or a request, or its approval) that would put ``follower``
        past ``max_following``; ``who`` starts the message ("you follow").

        The count is one read: a counter row on Cassandra, an indexed COUNT on SQLite.
        Counting and following are two steps, and several service hosts run at once, so
        requests racing for one user may each see room for one more and overshoot the cap
        by as many as race (a few). Nothing relies on the cap holding exactly: the timeline
        reads every followee however many there are."""
        _followers, following = await self.graph.count_follows(follower.id)
        if following >= self.max_following:
            raise LimitReached(
                f"{who} {following} accounts: the most one may follow is "
                f"{self.max_following} (max_following){then}"
            )

    async def _users_page(
        self,
        fetch: Callable[[int | None, int], Awaitable[list[int]]],
        cursor: str | None,
        limit: int,
        scope: Scope,
        viewer: User | None = None,
    ) -> Page[User]:
        """A page of users, less those hidden from ``viewer`` (``Audience.shown_users``),
        read past them (``fill_page``); its cursors are ``scope``'s. They name no viewer:
        a cursor is a place in the list, and what one viewer is not shown another's
        cursor does not show either."""
        audience = self.audience(viewer)
        users, last = await fill_page(
            fetch,
            lambda ids: self.shown_ids(audience, ids),
            lambda i: i,
            lambda user: user.id,
            self.cursors.decode_cursor(cursor, scope),
            clamp_limit(limit, self.max_page),
        )
        return Page(users, None if last is None else self.cursors.encode_cursor(last, scope))

    async def shown_ids(self, audience: Audience, ids: list[int]) -> list[User]:
        """The users of ``ids`` that ``audience``'s viewer is shown, in order."""
        users = await asyncio.gather(*(audience.owner(i) for i in ids))
        return await audience.shown_users([u for u in users if u is not None])

    async def _listed(self, username: str, viewer: User | None) -> User:
        """The user whose follow lists ``viewer`` asks for, if ``viewer`` may read them."""
        user = await self._user(username, viewer)
        # SECURITY: a private account's graph is for its owner and approved followers.
        if user.private and not (
            viewer is not None
            and (viewer.id == user.id or await self.graph.is_following(viewer.id, user.id))
        ):
            raise NotAllowed(
                f"this account is private: only {username}'s approved followers see its follows"
            )
        return user

    async def followers(
        self, username: str, cursor: str | None, limit: int, viewer: User | None
    ) -> Page[User]:
        user = await self._listed(username, viewer)
        return await self._users_page(
            lambda after, n: self.graph.followers(user.id, after, n),
            cursor,
            limit,
            Scope("followers", (user.id,)),
            viewer,
        )

    async def following(
        self, username: str, cursor: str | None, limit: int, viewer: User | None
    ) -> Page[User]:
        user = await self._listed(username, viewer)
        return await self._users_page(
            lambda after, n: self.graph.following(user.id, after, n),
            cursor,
            limit,
            Scope("following", (user.id,)),
            viewer,
        )

    async def requests(self, me: User, cursor: str | None, limit: int) -> Page[User]:
        return await self._users_page(
            lambda after, n: self.graph.follow_requests(me.id, after, n),
            cursor,
            limit,
            Scope("follow requests", (me.id,)),
            me,
        )

    def audience(self, viewer: User | None, users: TtlCache[int, User] | None = None) -> Audience:
        """Who may see what, for ``viewer``; ``users``: a cache of owners shared across
        requests."""
        return Audience(
            self.accounts,
            self.graph,
            viewer,
            users,
            self.blocks,
            self.moderation,
            self.hidden_items,
        )

    async def named(self, username: str, viewer: User | None) -> User:
        """The user of that name unless hidden from ``viewer`` (``NotFound`` as for none)."""
        return await self._user(username, viewer)

    async def _tell(self, kind: str, actor: User, other: User) -> None:
        if self.on_activity is not None:
            await self.on_activity(kind, actor, other)


class Audience:
    """Decides which photos one viewer may see, remembering owners and follow checks for
    the life of one request."""

    def __init__(
        self,
        accounts: AccountStore,
        graph: FollowGraph,
        viewer: User | None,
        users: TtlCache[int, User] | None = None,
        blocks: BlockStore | None = None,
        moderation: ModerationStore | None = None,
        hidden_items: TtlCache[int, bool] | None = None,
    ) -> None:
        self.accounts = accounts
        self.graph = graph
        self.viewer = viewer
        self.hidden_items = hidden_items  # shared across requests (see Social.hidden_items)
        self.users = users  # shared across requests: owners change rarely (see RECORD_TTL_S)
        self.blocks = blocks  # None: no block hides anything (a core without blocks)
        self.moderation = moderation  # None: nothing is hidden by an operator
        self._owners: dict[int, User | None] = {}
        self._follows: dict[int, bool] = {}
        self._walls: dict[int, Wall] = {}  # user id -> the blocks between them and the viewer
        self._hidden: dict[int, bool] = {}  # item id -> hidden by an operator
        self._all_walls: frozenset[int] | None = None  # see ``walls``

    def assume_following(self, owner_ids: Iterable[int]) -> None:
        """The viewer is known to follow these users (the timeline read the list)."""
        self._follows.update(dict.fromkeys(owner_ids, True))

    async def _owner(self, owner_id: int) -> User | None:
        if owner_id not in self._owners:
            if self.users is None:
                self._owners[owner_id] = await self.accounts.get_user(owner_id)
            else:  # an expired entry is read once however many requests miss it
                # (None, no such user, is answered and never kept: ``TtlCache.through``)
                read = cast(
                    "Callable[[], Awaitable[User]]", lambda: self.accounts.get_user(owner_id)
                )
                self._owners[owner_id] = await self.users.through(owner_id, read)
        return self._owners[owner_id]

    async def _follows_owner(self, owner_id: int) -> bool:
        if self.viewer is None:
            return False
        if owner_id not in self._follows:
            self._follows[owner_id] = await self.graph.is_following(self.viewer.id, owner_id)
        return self._follows[owner_id]

    async def may_see_account(self, owner: User) -> bool:
        """Whether the viewer may see any photo of ``owner``: its own, a public
        account's, or a private one's it follows."""
        if not owner.private or (self.viewer is not None and self.viewer.id == owner.id):
            return True
        return await self._follows_owner(owner.id)

    async def can_see(self, photo: Photo) -> bool:
        if self.viewer is not None and photo.owner_id == self.viewer.id:
            return True
        if photo.visibility is Visibility.PRIVATE:
            return False
        owner = await self._owner(photo.owner_id)
        if owner is None:
            return False
        # SECURITY: a photo an operator hid, or any photo of an account hidden or walled
        # off from the viewer by a block, is as missing.
        if await self._is_hidden(photo.id) or await self.hides_user(owner):
            return False
        if photo.visibility is Visibility.FOLLOWERS or owner.private:
            return await self._follows_owner(photo.owner_id)
        return True

    async def can_see_evenly(self, photo: Photo, asked: int | None = None) -> bool:
        """``can_see`` after the same reads whatever the answer: the owner (through the
        cache) and, for a signed-in viewer, the follow and the blocks; whether the id
        ``asked`` (a missing one's, when ``photo`` stands in for it), the photo and its
        owner are hidden. For one photo looked up by id, where the time of a "no" must
        not tell a hidden photo from a missing one."""
        await asyncio.gather(
            self._owner(photo.owner_id),
            self._follows_owner(photo.owner_id),
            self._read_walls([photo.owner_id]),
            self._read_hidden([photo.id, photo.owner_id, asked or photo.id]),
        )
        return await self.can_see(photo)  # answered from what was just read

    async def filter(self, photos: Iterable[Photo]) -> list[Photo]:
        photos = list(photos)
        owners = {p.owner_id for p in photos}
        await asyncio.gather(
            *(self._owner(o) for o in owners),
            self._read_walls(owners),
            self._read_hidden([*owners, *(p.id for p in photos)]),
        )
        allowed = await asyncio.gather(*(self.can_see(p) for p in photos))
        return [p for p, ok in zip(photos, allowed, strict=True) if ok]

    async def owner(self, owner_id: int) -> User | None:
        return await self._owner(owner_id)

    # ---- blocks and what operators hid ------------------------------------------------

    async def _read_walls(self, user_ids: Iterable[int]) -> None:
        """The blocks both ways between the viewer and each of ``user_ids`` not read yet:
        two reads in all (whom they block, who blocks them)."""
        viewer = self.viewer
        if viewer is None or self.blocks is None:
            return
        ids = [i for i in set(user_ids) if i not in self._walls and i != viewer.id]
        if not ids:
            return
        blockers, blocked = await asyncio.gather(
            self.blocks.blockers_among(viewer.id, ids), self.blocks.blocked_among(viewer.id, ids)
        )
        for i in ids:
            self._walls[i] = Wall(blocks_viewer=i in blockers, viewer_blocks=i in blocked)

    async def _read_hidden(self, item_ids: Iterable[int]) -> None:
        """Which of ``item_ids`` (photos, comments, accounts) not read yet an operator hid:
        one read."""
        if self.moderation is None:
            return
        ids = [i for i in set(item_ids) if i not in self._hidden]
        if self.hidden_items is not None:
            known = self.hidden_items.lookup_many(ids)
            for i, (value, fresh) in zip(ids, known, strict=True):
                if fresh and value is not None:
                    self._hidden[i] = value
            ids = [i for i in ids if i not in self._hidden]
        if not ids:
            return
        moderation = self.moderation

        async def read(missing: list[int]) -> dict[int, bool]:
            found = await moderation.hidden_among(missing)
            return {i: i in found for i in missing}

        if self.hidden_items is None:
            self._hidden.update(await read(ids))
        else:  # an expired entry is read once however many requests miss it
            self._hidden.update(await self.hidden_items.through_many(ids, read))

    async def _is_hidden(self, item_id: int) -> bool:
        await self._read_hidden([item_id])
        return self._hidden.get(item_id, False)

    async def wall(self, user: User) -> Wall:
        """The blocks between the viewer and ``user`` (none for nobody signed in, or
        for the viewer themselves)."""
        await self._read_walls([user.id])
        return self._walls.get(user.id, NO_WALL)

    async def shuts_out(self, user: User) -> bool:
        """Whether ``user`` is as missing to the viewer whatever the viewer does: an
        account an operator hid (from everyone but itself), or one that blocks the viewer.
        The viewer's own blocks are left out (they may unblock, and list them)."""
        if self.viewer is not None and self.viewer.id == user.id:
            return False
        if self.viewer is None:  # no blocks to read: no tasks to make (the media hot path)
            return await self._is_hidden(user.id)
        hidden, wall = await asyncio.gather(self._is_hidden(user.id), self.wall(user))
        return hidden or wall.blocks_viewer

    async def hides_user(self, user: User) -> bool:
        """Whether ``user``, and all that is theirs (photos, profile, lists, comments), is
        as missing to the viewer: ``shuts_out``, or the viewer blocks them (a block hides
        each of the two from the other)."""
        if await self.shuts_out(user):
            return True
        return (await self.wall(user)).viewer_blocks

    async def shown_users(self, users: list[User]) -> list[User]:
        """``users`` less those hidden from the viewer (two reads for the blocks, one for
        the operator's hidden items, for them all)."""
        ids = [u.id for u in users]
        await asyncio.gather(self._read_walls(ids), self._read_hidden(ids))
        hidden = await asyncio.gather(*(self.hides_user(u) for u in users))
        return [u for u, no in zip(users, hidden, strict=True) if not no]

    async def shown_mentions(self, named: list[list[User]]) -> list[list[User]]:
        """Each list of mentioned accounts less those hidden from the viewer (one look-up
        for them all): a name the viewer may not see is not linked either."""
        everyone = list({u.id: u for found in named for u in found}.values())
        shown = {u.id for u in await self.shown_users(everyone)}
        return [[u for u in found if u.id in shown] for found in named]

    async def shown_item(self, item_id: int, author_id: int) -> bool:
        """Whether an item of ``author_id``'s (a comment) is shown to the viewer: not
        hidden by an operator (its author still sees it) and its author not hidden."""
        if self.viewer is not None and self.viewer.id == author_id:
            return True
        if await self._is_hidden(item_id):
            return False
        author = await self._owner(author_id)
        return author is None or not await self.hides_user(author)

    async def read_items(self, item_ids: Iterable[int], author_ids: Iterable[int]) -> None:
        """Read ahead what ``shown_item`` needs for a page of items: one read of the
        hidden ones (items and authors), two of the blocks."""
        authors = set(author_ids)
        await asyncio.gather(
            *(self._owner(a) for a in authors),
            self._read_walls(authors),
            self._read_hidden([*item_ids, *authors]),
        )

    # ---- counts as the viewer sees them ---------------------------------------------

    async def walls(self) -> frozenset[int]:
        """Every account a block stands between the viewer and, either way: the counts
        shown to the viewer leave out what they did (their likes, comments and follows),
        as the lists leave them out, so a count never tells of an account hidden from
        the viewer. Both of the viewer's block partitions, read whole once a request
        (``WALLS_PAGE`` ids a read): nobody signed in has none."""
        if self._all_walls is None:
            viewer = self.viewer
            if viewer is None or self.blocks is None:
                self._all_walls = frozenset()
            else:
                blocked, blockers = await asyncio.gather(
                    _every(self.blocks.blocked, viewer.id), _every(self.blocks.blockers, viewer.id)
                )
                self._all_walls = frozenset(blocked) | frozenset(blockers)
        return self._all_walls


WALLS_PAGE = 1000  # block ids a read, when the counts read all of a viewer's blocks


async def _every(
    read: Callable[[int, int | None, int], Awaitable[list[int]]], user_id: int
) -> list[int]:
    """Every id of one of ``user_id``'s id-ordered lists, ``WALLS_PAGE`` a read."""
    found: list[int] = []
    while True:
        ids = await read(user_id, found[-1] if found else None, WALLS_PAGE)
        found += ids
        if len(ids) < WALLS_PAGE:
            return found


@dataclass(frozen=True)
class Wall:
    """The blocks between a viewer and another user, each way."""

    blocks_viewer: bool
    viewer_blocks: bool


NO_WALL = Wall(blocks_viewer=False, viewer_blocks=False)
