"""Hashtags and title edits through the core services, on both adapters:

- a tag's page is newest first, paged by cursors of that tag and viewer, and shows only
  what the viewer may see (private accounts, followers-only photos, blocks, photos an
  operator hid, deleted photos); tags by prefix name no tag the viewer sees no photo of;
- a title edit is its owner's only, follows the upload's title rules, and moves the
  search and tag indexes with it (old terms gone, new ones found); accounts it newly
  mentions are told once;
- an edit cut off after any one of its store calls (the process killed there) leaves
  nothing shown wrong, and its retry (or the next edit) leaves the indexes exactly as
  the record's title says; two edits at once end with the indexes of the one that won;
- purge removes every row an upload's tags and an edit wrote."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from instastore import search
from instastore.errors import BadCursor, InvalidInput, NotAllowed, NotFound
from instastore.model import Photo, User, Visibility
from instastore.services import Services, build_services
from instastore.tags import Tags, title_tags

from ..factories import make_photo

PASSWORD = "correct horse battery"


@pytest.fixture
async def core(stores, adapter_settings) -> AsyncIterator[Services]:
    services = build_services(stores, adapter_settings)
    yield services
    services.accounts.close()  # the stores are the fixture's to close


def _word() -> str:
    return f"w{uuid.uuid4().hex[:10]}"  # a word (and tag) no other test uses


async def _user(core: Services, private: bool = False) -> User:
    user = await core.accounts.sign_up(f"u{uuid.uuid4().hex[:12]}", PASSWORD)
    return await core.accounts.update(user, private=True) if private else user


async def _photo(core: Services, owner: User, title: str, **fields) -> Photo:
    photo = make_photo(owner.id, title, **fields)
    await core.photos.save(photo)  # as an upload saves it: tag rows, then the record
    return photo


async def _tagged(core: Services, viewer: User | None, tag: str, limit: int = 20) -> list[int]:
    """Every photo id of the tag's pages, as ``viewer`` walks them ``limit`` at a time."""
    found: list[int] = []
    cursor = None
    while True:
        page = await core.tags.page(viewer, tag, cursor, limit)
        found += [card.photo.id for card in page.items]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def _searched(core: Services, viewer: User | None, query: str) -> list[int]:
    page = await core.viewing.search(viewer, query, None, 50, address="test")
    return [card.photo.id for card in page.items]


async def _rows(core: Services, photo: Photo, terms: list[str], tags: list[str]) -> dict:
    """What the stores hold for the photo under each term and tag (ignoring the record)."""
    held = {}
    for term in terms:
        hits = await core._stores.search.search_terms([term], None, 100, 1000)
        held[term] = photo.id in hits.ids
    for tag in tags:
        held[f"#{tag}"] = photo.id in await core._stores.tags.tag_photo_ids(tag, None, 100)
    return held


# ---- tag pages ---------------------------------------------------------------------


async def test_a_tag_page_is_newest_first_folded_and_paged(core):
    tag = _word()
    owner = await _user(core)
    saved = [await _photo(core, owner, f"day {k} #{tag.upper()}") for k in range(5)]
    await _photo(core, owner, f"no tag here {tag}")  # the word, not the tag
    newest_first = [p.id for p in reversed(saved)]
    assert await _tagged(core, None, tag, limit=2) == newest_first
    assert await _tagged(core, owner, f"#{tag.upper()}") == newest_first  # '#' and case folded
    page = await core.tags.page(None, tag, None, 2)
    with pytest.raises(BadCursor):  # a cursor of one tag is no other's, nor another viewer's
        await core.tags.page(None, _word(), page.next_cursor, 2)
    with pytest.raises(BadCursor):
        await core.tags.page(owner, tag, page.next_cursor, 2)


async def test_tags_fold_as_search_folds_words(core):
    owner = await _user(core)
    word = _word()
    photo = await _photo(
        core, owner, f"Ça va #Café{word} #\uff26\uff35\uff2c\uff2c{word} a#b{word} #1 #{word}_x"
    )
    assert title_tags(photo.title) == [f"cafe{word}", f"full{word}", word]
    assert await _tagged(core, None, f"CAFÉ{word}") == [photo.id]
    assert await _tagged(core, None, f"full{word}") == [photo.id]
    assert await _tagged(core, None, f"b{word}") == []  # inside a word: no tag


@pytest.mark.parametrize("bad", ["", "#", "a_b", "a b", "x" * 65, "#a#b", "a.b", "##ab"])
async def test_a_tag_not_of_the_declared_shape_is_refused(core, bad):
    with pytest.raises(InvalidInput):
        await core.tags.page(None, bad, None, 10)


@pytest.mark.parametrize("word", ["12345", "\u00e9\u00bd", "\u00bf\u00bf", "\u0663\u0664"])
async def test_a_tag_no_title_can_have_has_no_photos_and_takes_no_cursor(core, word):
    owner = await _user(core)
    await _photo(core, owner, f"#{word} {word}")
    page = await core.tags.page(owner, word, None, 10)
    assert (page.items, page.next_cursor) == ([], None)
    other = await core.tags.page(None, _word(), None, 1)
    with pytest.raises(BadCursor):
        await core.tags.page(None, word, other.next_cursor or "x" * 40, 10)


async def test_a_tag_page_shows_only_what_the_viewer_may_see(core):
    tag = _word()
    owner, private_owner = await _user(core), await _user(core, private=True)
    stranger, follower, blocked = await _user(core), await _user(core), await _user(core)
    await core.social.follow(follower, owner.username)
    public = await _photo(core, owner, f"#{tag} public")
    followers = await _photo(core, owner, f"#{tag} f", visibility=Visibility.FOLLOWERS)
    own_only = await _photo(core, owner, f"#{tag} p", visibility=Visibility.PRIVATE)
    of_private = await _photo(core, private_owner, f"#{tag} of a private account")
    hidden = await _photo(core, owner, f"#{tag} hidden by an operator")
    deleted = await _photo(core, owner, f"#{tag} deleted")
    await core.moderation.hide("photo", hidden.id)
    await core.photos.delete(deleted.id, owner.id)
    await core.blocks.block(owner, blocked.username)

    assert await _tagged(core, stranger, tag) == [public.id]
    assert await _tagged(core, None, tag) == [public.id]
    assert await _tagged(core, follower, tag) == [followers.id, public.id]
    assert await _tagged(core, blocked, tag) == []
    assert await _tagged(core, owner, tag) == [hidden.id, own_only.id, followers.id, public.id]
    assert await _tagged(core, private_owner, tag) == [of_private.id, public.id]


async def test_tags_by_prefix_name_only_tags_the_viewer_sees_a_photo_of(core):
    stem = _word()
    owner, private_owner, stranger = (
        await _user(core),
        await _user(core),
        await _user(core),
    )
    private_owner = await core.accounts.update(private_owner, private=True)
    await _photo(core, owner, f"#{stem}b #{stem}a")
    await _photo(core, private_owner, f"#{stem}secret")
    gone = await _photo(core, owner, f"#{stem}gone")
    await core.photos.delete(gone.id, owner.id)
    assert await core.tags.search(stranger, stem, 20) == [f"{stem}a", f"{stem}b"]
    assert await core.tags.search(None, f"#{stem.upper()}", 20, "test") == [f"{stem}a", f"{stem}b"]
    assert await core.tags.search(private_owner, stem, 20) == [
        f"{stem}a",
        f"{stem}b",
        f"{stem}secret",
    ]
    assert await core.tags.search(stranger, stem, 1) == [f"{stem}a"]
    assert await core.tags.search(stranger, f"{stem}zz", 20) == []


@pytest.mark.parametrize("bad", [None, "", "#", "a", "#a", "a_b", "a-b", "x" * 65])
async def test_a_bad_prefix_is_refused(core, bad):
    with pytest.raises(InvalidInput):
        await core.tags.search(None, bad, 10, "test")


async def test_a_prefix_that_starts_no_tag_lists_none(core):
    assert await core.tags.search(None, "\u00bf\u00bf", 10, "test") == []


# ---- title edits -----------------------------------------------------------------


async def test_an_edit_moves_the_search_and_tag_indexes(core):
    old_word, new_word, kept = _word(), _word(), _word()
    owner = await _user(core)
    photo = await _photo(core, owner, f"{old_word} {kept} #{old_word}t #{kept}t")
    card = await core.tags.retitle(owner, photo.id, f"  {new_word} {kept} #{new_word}t #{kept}t ")
    assert card.photo.title == f"{new_word} {kept} #{new_word}t #{kept}t"  # trimmed
    assert (await core.photos.get(photo.id)).title == card.photo.title
    assert await _searched(core, None, old_word) == []
    assert await _searched(core, None, new_word) == [photo.id]
    assert await _searched(core, None, kept) == [photo.id]
    assert await _tagged(core, None, f"{old_word}t") == []
    assert await _tagged(core, None, f"{new_word}t") == [photo.id]
    assert await _tagged(core, None, f"{kept}t") == [photo.id]
    # Not only hidden from readers: the old rows are gone from the stores.
    terms = [old_word, new_word, kept]
    tags = [f"{old_word}t", f"{new_word}t", f"{kept}t"]
    assert await _rows(core, photo, terms, tags) == {
        old_word: False,
        new_word: True,
        kept: True,
        f"#{old_word}t": False,
        f"#{new_word}t": True,
        f"#{kept}t": True,
    }
    # The rest of the record stands.
    after = await core.photos.get(photo.id)
    assert (after.renditions, after.secret, after.visibility) == (
        photo.renditions,
        photo.secret,
        photo.visibility,
    )


async def test_only_the_owner_edits_and_a_hidden_photo_is_missing(core):
    owner, stranger = await _user(core), await _user(core)
    public = await _photo(core, owner, "public")
    private = await _photo(core, owner, "mine", visibility=Visibility.PRIVATE)
    with pytest.raises(NotAllowed):
        await core.tags.retitle(stranger, public.id, "taken over")
    with pytest.raises(NotFound) as hidden:
        await core.tags.retitle(stranger, private.id, "taken over")
    with pytest.raises(NotFound) as missing:
        await core.tags.retitle(stranger, private.id + 1, "taken over")
    assert str(hidden.value).replace(str(private.id), "N") == str(missing.value).replace(
        str(private.id + 1), "N"
    )
    deleted = await _photo(core, owner, "deleted")
    await core.photos.delete(deleted.id, owner.id)
    with pytest.raises(NotFound):
        await core.tags.retitle(owner, deleted.id, "back")
    assert (await core.photos.get(public.id)).title == "public"


@pytest.mark.parametrize(
    "title",
    [None, 5, "", "   ", "x" * 10_000, "bad \u202e bidi", "nul \x00 here", "line\u2028sep"],
)
async def test_an_edit_follows_the_upload_title_rules(core, title):
    owner = await _user(core)
    photo = await _photo(core, owner, "as uploaded")
    with pytest.raises(InvalidInput):
        await core.tags.retitle(owner, photo.id, title)
    assert (await core.photos.get(photo.id)).title == "as uploaded"


async def test_an_edit_tells_newly_mentioned_accounts_once(core):
    owner, named, newly = await _user(core), await _user(core), await _user(core)
    photo = await _photo(core, owner, f"with @{named.username}")
    await core.viewing.uploaded(owner, photo, True)  # the upload's mention events

    async def mentions(user: User) -> list[int]:
        page = await core.activity.page(user, None, 50)
        return [c.event.photo_id for c in page.items if c.event.kind == "mention"]

    await core.tags.retitle(owner, photo.id, f"@{named.username} and @{newly.username}")
    await core.tags.retitle(owner, photo.id, f"@{named.username} and @{newly.username}")
    assert await mentions(newly) == [photo.id]
    assert await mentions(named) == [photo.id]
    await core.tags.retitle(owner, photo.id, "nobody")  # edited away: not shown
    assert await mentions(newly) == [] and await mentions(named) == []
    await core.tags.retitle(owner, photo.id, f"@{newly.username} @{named.username} again")
    assert await mentions(newly) == [photo.id]  # named again: still once
    assert await mentions(named) == [photo.id]  # the upload's event, not a second one


class _Killed(Exception):
    """The process died here."""


class _DiesAfter:
    """The stores' tag index, as a process sees it that is killed after ``calls`` of its
    calls have landed (the one after never runs)."""

    def __init__(self, index, calls: int) -> None:
        self.index, self.left = index, calls

    def __getattr__(self, name):
        method = getattr(self.index, name)

        async def call(*args):
            if self.left == 0:
                raise _Killed(name)
            self.left -= 1
            return await method(*args)

        return call


async def test_an_edit_killed_after_any_step_is_finished_by_its_retry(core, adapter_settings):
    owner = await _user(core)
    steps = 0
    while True:
        old, new = _word(), _word()
        photo = await _photo(core, owner, f"{old} #{old}t")
        killed = Tags(
            _DiesAfter(core._stores.tags, steps), core.photos, core.viewing, adapter_settings
        )
        try:
            await killed.retitle(owner, photo.id, f"{new} #{new}t")
        except _Killed:
            # Whatever landed, readers see one title's photo: the record's.
            title = (await core.photos.get(photo.id)).title
            shown = old if title.startswith(old) else new
            other = new if shown == old else old
            assert await _searched(core, None, shown) == [photo.id]
            assert await _searched(core, None, other) == []
            assert await _tagged(core, None, f"{shown}t") == [photo.id]
            assert await _tagged(core, None, f"{other}t") == []
            await core.tags.retitle(owner, photo.id, f"{new} #{new}t")  # the client's retry
            assert await _rows(core, photo, [old, new], [f"{old}t", f"{new}t"]) == {
                old: False,
                new: True,
                f"#{old}t": False,
                f"#{new}t": True,
            }, f"killed after {steps} call(s)"
            steps += 1
            continue
        assert steps == 4  # both titles indexed, the record, then converge: index, unindex
        return


async def test_two_edits_at_once_end_with_the_indexes_of_the_title_that_won(core):
    owner = await _user(core)
    for _ in range(3):
        first, second = _word(), _word()
        photo = await _photo(core, owner, "start #start")
        await asyncio.gather(
            core.tags.retitle(owner, photo.id, f"{first} #{first}t"),
            core.tags.retitle(owner, photo.id, f"{second} #{second}t"),
        )
        title = (await core.photos.get(photo.id)).title
        won, lost = (first, second) if title.startswith(first) else (second, first)
        assert await _rows(core, photo, [won, lost, "start"], [f"{won}t", f"{lost}t"]) == {
            won: True,
            lost: False,
            "start": False,
            f"#{won}t": True,
            f"#{lost}t": False,
        }


async def test_purge_removes_every_tag_row_an_upload_and_edits_wrote(core):
    owner = await _user(core)
    first, second = _word(), _word()
    photo = await _photo(core, owner, f"#{first}")
    await core.tags.retitle(owner, photo.id, f"#{second} {second}")
    deleted = await core.photos.delete(photo.id, owner.id)
    await core._stores.photos.purge_photo(
        deleted.with_deleted_at(deleted.deleted_at - timedelta(days=1)),
        search.terms(deleted.title),
    )
    assert await core._stores.tags.tag_photo_ids(first, None, 10) == []
    assert await core._stores.tags.tag_photo_ids(second, None, 10) == []
    assert await _rows(core, photo, [second], []) == {second: False}
