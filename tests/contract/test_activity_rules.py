"""The activity inbox's promises through the core services, on both adapters, with
faults injected around the real stores: an acknowledged action never loses its event,
and an action tried again (after a failure that left its outcome unknown, before or
after its event landed) has one event, never two."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest

from instastore import errors
from instastore.model import Photo, User, Visibility
from instastore.services import Services, build_services

from ..factories import make_photo, make_user

PASSWORD = "correct horse battery"


class FaultyActivity:
    """The real activity port; the next event write fails once, after writing or not."""

    def __init__(self, real) -> None:
        self.real = real
        self.fault: str | None = None  # "after writing" or "without writing"

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def add_event(self, event, until):
        fault, self.fault = self.fault, None
        if fault != "without writing":
            await self.real.add_event(event, until)
        if fault:
            raise errors.OutcomeUnknown(f"injected: the event write timed out {fault}")


class FaultyLikes:
    """The real like port; the next like lands and then times out, once."""

    def __init__(self, real) -> None:
        self.real = real
        self.fault = False

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def like(self, photo_id, user_id, at):
        fault, self.fault = self.fault, False
        landed = await self.real.like(photo_id, user_id, at)
        if fault:
            raise errors.OutcomeUnknown("injected: the like timed out after landing")
        return landed


@dataclasses.dataclass
class Rig:
    core: Services
    activity: FaultyActivity
    likes: FaultyLikes
    stores: object


@pytest.fixture
async def rig(stores, adapter_settings) -> AsyncIterator[Rig]:
    activity, likes = FaultyActivity(stores.activity), FaultyLikes(stores.likes)
    core = build_services(
        dataclasses.replace(stores, activity=activity, likes=likes), adapter_settings
    )
    yield Rig(core, activity, likes, stores)
    core.accounts.close()  # the stores are the fixture's to close


async def _user(core: Services, private: bool = False) -> User:
    user = await core.accounts.sign_up(f"u{uuid.uuid4().hex[:12]}", PASSWORD)
    if private:
        user = await core.accounts.update(user, None, True)
    return user


async def _photo(rig: Rig, owner: User) -> Photo:
    photo = make_photo(owner.id, visibility=Visibility.PUBLIC)
    await rig.stores.photos.save_photo(photo, [])  # type: ignore[attr-defined]
    return photo


async def _kinds(core: Services, reader: User) -> list[tuple[str, int]]:
    page = await core.activity.page(reader, None, 100)
    return [(c.event.kind, c.actor.id) for c in page.items]


@pytest.mark.parametrize("fault", ["without writing", "after writing"])
async def test_a_like_whose_event_failed_is_not_stored_and_its_retry_tells_once(rig, fault):
    core = rig.core
    owner, fan = await _user(core), await _user(core)
    photo = await _photo(rig, owner)
    rig.activity.fault = fault
    with pytest.raises(errors.OutcomeUnknown):
        await core.viewing.set_like(fan, photo.id, True)
    # Not answered, and not stored: the event goes first, so no like lacks its event.
    assert await rig.likes.liked_by(fan.id, [photo.id]) == set()
    assert await _kinds(core, owner) == []  # a row that landed is left out: no like stands
    assert await core.viewing.set_like(fan, photo.id, True) == 1  # the client's retry
    assert await _kinds(core, owner) == [("like", fan.id)]
    rows = await rig.activity.events(owner.id, None, 0, 10)
    assert len(rows) == 1


async def test_a_like_answered_with_an_unknown_outcome_is_told_once_after_its_retry(rig):
    core = rig.core
    owner, fan = await _user(core), await _user(core)
    photo = await _photo(rig, owner)
    rig.likes.fault = True
    with pytest.raises(errors.OutcomeUnknown):
        await core.viewing.set_like(fan, photo.id, True)
    assert await _kinds(core, owner) == [("like", fan.id)]  # it landed, with its event
    await core.viewing.set_like(fan, photo.id, True)
    await core.viewing.set_like(fan, photo.id, False)
    await core.viewing.set_like(fan, photo.id, True)  # toggled: still one event
    assert await _kinds(core, owner) == [("like", fan.id)]
    assert len(await rig.activity.events(owner.id, None, 0, 10)) == 1


@pytest.mark.parametrize("private", [False, True])
async def test_a_follow_or_request_whose_event_failed_is_told_once_after_its_retry(rig, private):
    core = rig.core
    owner, fan = await _user(core, private), await _user(core)
    rig.activity.fault = "after writing"
    with pytest.raises(errors.OutcomeUnknown):
        await core.social.follow(fan, owner.username)
    assert await _kinds(core, owner) == []  # written ahead; nothing stands yet
    state = await core.social.follow(fan, owner.username)
    assert state == ("requested" if private else "following")
    assert await _kinds(core, owner) == [("request" if private else "follow", fan.id)]
    assert len(await rig.activity.events(owner.id, None, 0, 10)) == 1


async def test_an_approval_whose_event_failed_keeps_its_request_and_tells_once(rig):
    core = rig.core
    owner, fan = await _user(core, private=True), await _user(core)
    await core.social.follow(fan, owner.username)
    rig.activity.fault = "without writing"
    with pytest.raises(errors.OutcomeUnknown):
        await core.social.approve(owner, fan.username)
    assert (await core.social.relation(fan, owner)).requested  # still pending: not approved
    await core.social.approve(owner, fan.username)
    assert await _kinds(core, fan) == [("approved", owner.id)]
    assert await _kinds(core, owner) == []  # the request is no longer pending


async def _followers(rig: Rig, reader: User, count: int) -> list[int]:
    """``count`` accounts that follow ``reader``, each with its follow event written."""
    made = []
    for _ in range(count):
        fan = make_user()
        await rig.stores.accounts.create_user(fan)  # type: ignore[attr-defined]
        await rig.core.social.graph.follow(fan.id, reader.id, fan.created_at)
        await rig.core.activity.tell("follow", fan, reader)
        made.append(fan.id)
    return made


async def _unfollowed(rig: Rig, reader: User, count: int) -> list[int]:
    """``count`` follow events of accounts that no longer follow ``reader``."""
    made = await _followers(rig, reader, count)
    for fan_id in made:
        await rig.core.social.graph.unfollow(fan_id, reader.id)
    return made


async def test_the_unread_count_stops_at_99_and_says_there_is_more(rig):
    reader = await _user(rig.core)
    await _followers(rig, reader, 101)
    unread = await rig.core.activity.unread(reader)
    assert (unread.count, unread.more) == (99, True)
    # Read up to the third oldest (the mark is a "read up to"): 98 newer, all counted.
    page = await rig.core.activity.page(reader, None, 100)
    await rig.core.activity.mark_read(reader, page.items[98].event.event_id)
    unread = await rig.core.activity.unread(reader)
    assert (unread.count, unread.more) == (98, False)


async def test_a_page_reads_past_what_it_leaves_out_and_goes_on_after(rig):
    reader = await _user(rig.core)
    older = await _followers(rig, reader, 2)
    await _unfollowed(rig, reader, 7)  # more left out than a page reads: 3 reads of 2
    newer = await _followers(rig, reader, 1)
    page = await rig.core.activity.page(reader, None, 2)
    assert [c.actor.id for c in page.items] == newer  # short: three reads found one
    assert page.next_cursor is not None
    rest = await rig.core.activity.page(reader, page.next_cursor, 2)
    assert [c.actor.id for c in rest.items] == older[::-1]
    assert rest.next_cursor is None
    unread = await rig.core.activity.unread(reader)
    assert (unread.count, unread.more) == (3, False)
