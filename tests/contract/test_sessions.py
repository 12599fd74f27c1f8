"""The session contract (``AccountStore``): both adapters, same behaviour. A session is
found by the hash of its token, listed among its user's, touched, and ended alone or with
all of its user's; never another user's."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from instastore.model import UserSession

from ..factories import new_id


def now_ms() -> datetime:
    """Now, to the millisecond (what both stores keep of a time)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def make_session(
    stores, user_id: int, address: str = "10.0.0.1", lasts: timedelta = timedelta(days=1)
) -> tuple[str, UserSession]:
    now = now_ms()
    session = UserSession(new_id(), user_id, now, now, now + lasts, address)
    token_hash = uuid.uuid4().hex
    await stores.accounts.create_session(token_hash, session)
    return token_hash, session


def close(a: datetime, b: datetime) -> bool:
    """Cassandra keeps an expiry as a TTL in whole seconds."""
    return abs((a - b).total_seconds()) <= 2


def same(found: UserSession | None, session: UserSession) -> bool:
    assert found is not None
    return found == UserSession(
        session.id,
        session.user_id,
        session.created_at,
        session.last_used_at,
        found.expires_at,
        session.address,
    ) and close(found.expires_at, session.expires_at)


async def test_a_session_is_found_by_its_token_hash(stores):
    token_hash, session = await make_session(stores, new_id())
    assert same(await stores.accounts.get_session(token_hash, now_ms()), session)
    assert await stores.accounts.get_session(uuid.uuid4().hex, now_ms()) is None


async def test_a_session_ends_when_it_expires(stores):
    token_hash, _ = await make_session(stores, new_id(), lasts=timedelta(seconds=2))
    await asyncio.sleep(3)
    assert await stores.accounts.get_session(token_hash, now_ms()) is None


async def test_a_users_sessions_are_listed_newest_first_and_only_theirs(stores):
    user, other = new_id(), new_id()
    made = [await make_session(stores, user, f"10.0.0.{i}") for i in range(3)]
    await make_session(stores, other)
    listed = await stores.accounts.user_sessions(user, now_ms(), 10)
    assert [s.id for s in listed] == [s.id for _, s in reversed(made)]
    assert all(same(found, s) for found, (_, s) in zip(listed, reversed(made), strict=True))
    assert [s.id for s in await stores.accounts.user_sessions(user, now_ms(), 2)] == [
        s.id for _, s in reversed(made[1:])
    ]


async def test_a_touch_sets_the_last_use_and_keeps_the_expiry(stores):
    token_hash, session = await make_session(stores, new_id())
    later = session.created_at + timedelta(minutes=5)
    await stores.accounts.touch_session(token_hash, session, later)
    found = await stores.accounts.get_session(token_hash, now_ms())
    assert found is not None and found.last_used_at == later
    assert close(found.expires_at, session.expires_at) and found.created_at == session.created_at
    (listed,) = await stores.accounts.user_sessions(session.user_id, now_ms(), 10)
    assert listed.last_used_at == later


async def test_one_session_ends_only_for_its_own_user(stores):
    user, other = new_id(), new_id()
    token_hash, session = await make_session(stores, user)
    kept_hash, kept = await make_session(stores, user)
    assert await stores.accounts.delete_session(other, session.id) is False  # not theirs
    assert await stores.accounts.get_session(token_hash, now_ms()) is not None
    assert await stores.accounts.delete_session(user, session.id) is True
    assert await stores.accounts.get_session(token_hash, now_ms()) is None
    assert await stores.accounts.delete_session(user, session.id) is False  # gone already
    assert [s.id for s in await stores.accounts.user_sessions(user, now_ms(), 10)] == [kept.id]
    assert await stores.accounts.get_session(kept_hash, now_ms()) is not None


async def test_a_touch_racing_the_end_of_its_session_brings_nothing_back(stores):
    token_hash, session = await make_session(stores, new_id())
    assert await stores.accounts.delete_session(session.user_id, session.id) is True
    await stores.accounts.touch_session(token_hash, session, now_ms())
    assert await stores.accounts.get_session(token_hash, now_ms()) is None
    assert await stores.accounts.user_sessions(session.user_id, now_ms(), 10) == []
    assert await stores.accounts.delete_session(session.user_id, session.id) is False


async def test_every_session_of_a_user_ends_but_the_one_kept(stores):
    user, other = new_id(), new_id()
    made = [await make_session(stores, user) for _ in range(3)]
    other_hash, _ = await make_session(stores, other)
    (kept_hash, kept) = made[1]
    await stores.accounts.delete_user_sessions(user, keep=kept.id)
    assert [s.id for s in await stores.accounts.user_sessions(user, now_ms(), 10)] == [kept.id]
    for token_hash, _ in (made[0], made[2]):
        assert await stores.accounts.get_session(token_hash, now_ms()) is None
    assert await stores.accounts.get_session(kept_hash, now_ms()) is not None
    await stores.accounts.delete_user_sessions(user)
    assert await stores.accounts.user_sessions(user, now_ms(), 10) == []
    assert await stores.accounts.get_session(kept_hash, now_ms()) is None
    assert await stores.accounts.get_session(other_hash, now_ms()) is not None  # not theirs


async def test_every_session_ends_past_one_page_of_them(stores):
    user = new_id()
    made = await asyncio.gather(*(make_session(stores, user) for _ in range(130)))
    await stores.accounts.delete_user_sessions(user)
    assert await stores.accounts.user_sessions(user, now_ms(), 500) == []
    found = await asyncio.gather(*(stores.accounts.get_session(h, now_ms()) for h, _ in made))
    assert found == [None] * len(made)


class Clock:
    def __init__(self) -> None:
        self.now = now_ms()

    def __call__(self) -> datetime:
        return self.now


async def test_the_last_use_is_written_at_most_once_a_minute(stores, adapter_settings):
    """Authenticating reads a session; it writes its last use only once that is a minute
    old, never once per request."""
    from instastore.accounts import Accounts
    from instastore.ids import IdGenerator

    clock = Clock()
    accounts = Accounts(
        stores.accounts,
        stores.photos,
        stores.graph,
        adapter_settings,
        IdGenerator(0),
        stores.leases,
        clock,
    )
    try:
        name = f"u{uuid.uuid4().hex[:12]}"
        user = await accounts.sign_up(name, "correct horse")
        _, token = await accounts.log_in(name, "correct horse")
        logged_in = clock.now

        async def stored_last_use() -> datetime:
            (session,) = await stores.accounts.user_sessions(user.id, clock.now, 10)
            return session.last_used_at

        clock.now = logged_in + timedelta(seconds=59)
        _, session = await accounts.authenticate(token)
        assert session.last_used_at == logged_in and await stored_last_use() == logged_in
        clock.now = logged_in + timedelta(seconds=60)
        _, session = await accounts.authenticate(token)
        assert session.last_used_at == clock.now and await stored_last_use() == clock.now
        clock.now += timedelta(seconds=30)
        await accounts.authenticate(token)
        assert await stored_last_use() == logged_in + timedelta(seconds=60)
    finally:
        accounts.close()


async def test_a_log_in_that_checked_the_old_password_keeps_no_session(stores, adapter_settings):
    """A password change sets the new hash, then ends every other session. A log-in that
    checked the old password and stores its session after that ending is refused and its
    session taken back: else a thief's log-in in flight would outlive the change."""
    from instastore.accounts import Accounts
    from instastore.errors import NotAuthenticated
    from instastore.ids import IdGenerator

    class ChangedMeanwhile:
        """The real store; the password changes (and sessions end) just before a session
        is stored, as when a change lands between a log-in's check and its write."""

        def __init__(self, store) -> None:
            self.store = store

        def __getattr__(self, name: str):
            return getattr(self.store, name)

        async def create_session(self, hashed, session) -> None:
            await self.store.set_password_hash(session.user_id, "$changed")
            await self.store.delete_user_sessions(session.user_id)
            await self.store.create_session(hashed, session)

    accounts = Accounts(
        ChangedMeanwhile(stores.accounts),
        stores.photos,
        stores.graph,
        adapter_settings,
        IdGenerator(0),
        stores.leases,
        Clock(),
    )
    try:
        name = f"u{uuid.uuid4().hex[:12]}"
        user = await accounts.sign_up(name, "correct horse")
        with pytest.raises(NotAuthenticated, match="password changed"):
            await accounts.log_in(name, "correct horse")
        assert await stores.accounts.user_sessions(user.id, now_ms(), 10) == []
    finally:
        accounts.close()
