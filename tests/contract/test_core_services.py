"""The core services without the server, on both adapters:

- they keep their own caches coherent: a change made through the services that
  ``build_services`` makes is seen at once by the timeline's caches and by the owner
  cache that visibility reads;
- one rule says which renditions a viewer gets: the media URLs a photo card lists are
  exactly the renditions the media route serves that viewer, for photos, videos and
  videos stored before their metadata-free copy existed."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest

from instastore.errors import NotAllowed, NotAuthenticated, NotFound
from instastore.model import Photo, User, Visibility
from instastore.services import Services, build_services
from instastore.uploads import receive
from instastore.viewing import allowed_renditions

from .. import samples

PASSWORD = "correct horse battery"


@pytest.fixture
async def core(stores, adapter_settings) -> AsyncIterator[Services]:
    services = build_services(stores, adapter_settings)
    yield services
    services.accounts.close()  # the stores are the fixture's to close


async def _user(core: Services) -> User:
    return await core.accounts.sign_up(f"u{uuid.uuid4().hex[:12]}", PASSWORD)


async def _upload(core: Services, user: User, title: str, data: bytes | None = None) -> Photo:
    async def chunks() -> AsyncIterator[bytes]:
        yield data or samples.image()

    received = await receive(chunks(), core.uploads.settings.max_upload_bytes, core.uploads.tmp_dir)
    try:
        photo, created = await core.uploads.create(user, received, title, Visibility.PUBLIC, None)
    finally:
        await asyncio.to_thread(received.discard)
    assert created
    return photo


async def _recent(core: Services, reader: User) -> list[int]:
    page = await core.viewing.timeline_page(reader, "recent", None, 10)
    return [card.photo.id for card in page.items]


async def test_follows_and_new_photos_reach_the_timeline_at_once(core):
    reader, author = await _user(core), await _user(core)
    assert await _recent(core, reader) == []  # the reader's followee list is now cached
    await core.social.follow(reader, author.username)
    first = await _upload(core, author, "first")
    assert await _recent(core, reader) == [first.id]  # the follow dropped the cached list
    second = await _upload(core, author, "second")
    # The author's newest id was cached by the last read; the upload itself raised it.
    assert await _recent(core, reader) == [second.id, first.id]
    await core.social.unfollow(reader, author.username)
    assert await _recent(core, reader) == []


async def test_an_approval_reaches_the_requesters_timeline_at_once(core):
    reader, author = await _user(core), await _user(core)
    await core.accounts.update(author, private=True)
    photo = await _upload(core, author, "for followers")
    assert await core.social.follow(reader, author.username) == "requested"
    assert await _recent(core, reader) == []
    await core.social.approve(author, reader.username)
    assert await _recent(core, reader) == [photo.id]


async def test_a_changed_account_is_seen_by_visibility_and_cards_at_once(core):
    owner, stranger = await _user(core), await _user(core)
    photo = await _upload(core, owner, "public")
    card = await core.viewing.card(stranger, photo.id)  # the owner is now cached
    assert card.owner is not None and card.owner.display_name == ""
    renamed = await core.accounts.update(owner, display_name="Renamed")
    card = await core.viewing.card(stranger, photo.id)
    assert card.owner is not None and card.owner.display_name == "Renamed"
    await core.accounts.update(renamed, private=True)
    with pytest.raises(NotFound):
        await core.viewing.card(stranger, photo.id)


async def test_cards_list_exactly_the_renditions_the_media_route_serves(core):
    owner, stranger = await _user(core), await _user(core)
    image = await _upload(core, owner, "image", samples.image())
    video = await _upload(core, owner, "video", samples.video())
    legacy = dataclasses.replace(
        video,
        id=core.uploads.ids.next_id(),
        renditions=tuple(r for r in video.renditions if r.name != "video"),
    )
    await core.photos.save(legacy)
    for photo in (image, video, legacy):
        for viewer in (owner, stranger, None):
            card = await core.viewing.card(viewer, photo.id)
            listed = {r.name for r in card.renditions}
            assert card.renditions == allowed_renditions(photo, viewer)
            for rendition in photo.renditions:
                call = core.viewing.media(viewer, photo.id, photo.secret, rendition.name)
                if rendition.name in listed:
                    assert (await call).rendition == rendition
                else:
                    with pytest.raises(NotAuthenticated if viewer is None else NotAllowed):
                        await call
            assert ("original" in listed) == (viewer is owner)
    assert "video" in {r.name for r in (await core.viewing.card(None, video.id)).renditions}
    assert "video" not in {r.name for r in (await core.viewing.card(None, legacy.id)).renditions}


async def test_a_wrong_secret_is_no_media_like_a_missing_photo(core):
    owner = await _user(core)
    photo = await _upload(core, owner, "image", samples.image())
    with pytest.raises(NotFound) as wrong:
        await core.viewing.media(owner, photo.id, "0" * len(photo.secret), "thumb")
    with pytest.raises(NotFound) as missing:
        await core.viewing.media(owner, core.uploads.ids.next_id(), photo.secret, "thumb")
    assert str(wrong.value).split()[:2] == str(missing.value).split()[:2] == ["no", "media"]
