"""Hashtags and title edits: which words of a title are tags, a tag's photos, tags by
prefix, and the one change an owner makes to a photo's record, its title.

- A tag: "#" not inside a word (nor after "&" or another "#": "&#35;", "##"), then
  letters and digits (an underscore or any other character ends it), folded exactly as
  search folds words (``search.terms``: one word once folded, at most
  ``MAX_TERM_LENGTH`` characters) and with at least one letter ("photo #1" tags
  nothing). At most ``MAX_TAGS_PER_TITLE`` per title. Tags are read from titles only:
  comments are not indexed (they link, they do not file a photo under a tag).
- A tag's page: its live photos the viewer may see (``Audience.filter``, as search),
  newest first, each checked against its record's title as it is now (a row a crash or
  an edit left is never shown), paged by sealed cursors scoped to the tag and the viewer.
- Tags by prefix: at most ``MAX_TAGS_LISTED`` tags starting with a prefix, in order; a
  tag is listed only when one of its newest photos is visible to the viewer (so no tag
  of private or hidden photos alone is named to them). No count is given: counting a
  tag's photos that a viewer may see would read them all.
- A title edit: its owner's only (404 for a photo the editor may not see, 403 for one
  they see but do not own, as delete); the title rules of an upload. The steps, each
  idempotent, so a retry, or any later edit, finishes one cut short anywhere: the
  mention events of accounts newly named (``Activity.retitled``: shown only while the
  title names them), the index rows of the old and the new title (remembered per
  photo), the record (a conditional write: a packer's switch stands), then ``converge``:
  the rows of the terms and tags the record's title no longer has go.

It never speaks HTTP.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from instastore import search
from instastore.config import Settings
from instastore.errors import InvalidInput, NotAllowed, NotFound, Unavailable
from instastore.limits import (
    MAX_TAGS_LISTED,
    MAX_TAGS_PER_TITLE,
    MAX_TERM_LENGTH,
    TAG_PREFIX_CHARS,
    TAG_SEARCH_ROUNDS,
    TITLE_EDIT_ROUNDS,
)
from instastore.model import Photo, User
from instastore.paging import Page, Scope
from instastore.photos import PhotoFilter, Photos
from instastore.social import Audience
from instastore.storage.ports import TagIndex
from instastore.uploads.checks import check_title
from instastore.viewing import PhotoCard, Viewing

_TAG = re.compile(r"(?<![\w&#])#([^\W_]+)")
# What a client may send as a tag or a prefix (the API declares these patterns): an
# optional "#", then ASCII letters and digits or any character past ASCII, which the
# core folds (a word of this shape that folds to no tag names nothing: an empty answer).
_CHAR = "[0-9A-Za-z\\u0080-\U0010ffff]"
TAG_PATTERN = f"^#?{_CHAR}{{1,{MAX_TERM_LENGTH}}}$"
PREFIX_PATTERN = f"^#?{_CHAR}{{{TAG_PREFIX_CHARS},{MAX_TERM_LENGTH}}}$"
_TAG_SHAPE = re.compile(TAG_PATTERN)
_PREFIX_SHAPE = re.compile(PREFIX_PATTERN)
PROBE = 20  # newest rows of a tag read to tell whether a viewer sees any of its photos

# The mention events of a title edit, written ahead of it: (editor, photo, new title).
Retitled = Callable[[User, Photo, str], Awaitable[list[User]]]


def fold_tag(word: str) -> str | None:
    """The tag ``word`` (letters and digits, no "#") files under: folded as search folds
    words; None if folding makes it more than one word, or it is over
    ``MAX_TERM_LENGTH`` characters."""
    found = search.terms(word)
    return found[0] if len(found) == 1 else None


def title_tags(title: str) -> list[str]:
    """The distinct tags of a title, folded, in order of first use."""
    seen: dict[str, None] = {}
    for match in _TAG.finditer(title):
        tag = fold_tag(match.group(1))
        if tag is not None and not tag.isdigit():
            seen.setdefault(tag, None)
            if len(seen) == MAX_TAGS_PER_TITLE:
                break
    return list(seen)


def _shaped(raw: str | None, pattern: re.Pattern[str], what: str, shortest: int) -> str:
    """The word of a tag or prefix as a client sends it, its "#" dropped; ``InvalidInput``
    unless it has the shape the API declares (``TAG_PATTERN``, ``PREFIX_PATTERN``)."""
    match = pattern.fullmatch(raw or "")
    if match is None:
        raise InvalidInput(
            f"{what} must be {shortest} to {MAX_TERM_LENGTH} ASCII letters or digits or "
            "characters past ASCII, after an optional '#'"
        )
    return (raw or "").removeprefix("#")


def parse_tag(raw: str | None) -> str | None:
    """A tag as a client names it (with or without its "#"), folded; None for a word of
    the declared shape that no title can be filed under (it folds to more or less than
    one word, or to digits alone); ``InvalidInput`` for one not of that shape."""
    tag = fold_tag(_shaped(raw, _TAG_SHAPE, "a tag", 1))
    return None if tag is None or tag.isdigit() else tag


def parse_prefix(raw: str | None) -> str | None:
    """The start of a tag, folded; None for one of the declared shape that starts no tag
    (not one word once folded, or shorter than ``TAG_PREFIX_CHARS`` then)."""
    prefix = fold_tag(_shaped(raw, _PREFIX_SHAPE, "prefix", TAG_PREFIX_CHARS))
    return None if prefix is None or len(prefix) < TAG_PREFIX_CHARS else prefix


def tag_scope(tag: str, viewer_id: int) -> Scope:
    """A tag's photos as ``viewer_id`` (0: nobody signed in) pages through them."""
    return Scope("tag", (tag, viewer_id))


class Tags:
    def __init__(
        self, index: TagIndex, photos: Photos, viewing: Viewing, settings: Settings
    ) -> None:
        self.index = index
        self.photos = photos
        self.viewing = viewing
        self.settings = settings
        # Told of a title edit before it is stored (``Activity.retitled``): the mention
        # events of the accounts it newly names.
        self.on_retitled: Retitled | None = None

    # ---- the tag rows of an upload -------------------------------------------------

    async def index_upload(self, photo: Photo) -> None:
        """The tag rows of a new photo's title, before its record is saved (readers skip
        rows without a record, and check the title of those with one)."""
        tags = title_tags(photo.title)
        if tags:
            await self.index.index_title(photo.id, (), tags)

    # ---- reads -----------------------------------------------------------------------

    def _filed(self, tag: str, audience: Audience) -> PhotoFilter:
        async def filed(photos: list[Photo]) -> list[Photo]:
            # A row left by an edit or a crash: only photos whose title has the tag now.
            tagged = [p for p in photos if tag in title_tags(p.title)]
            return await audience.filter(tagged)

        return filed

    async def page(
        self, viewer: User | None, raw_tag: str, cursor: str | None, limit: int
    ) -> Page[PhotoCard]:
        """A tag's photos ``viewer`` may see, newest first."""
        tag = parse_tag(raw_tag)
        viewer_id = viewer.id if viewer else 0
        if tag is None:  # no title is filed under it: no photo, and no cursor was made
            self.photos.cursors.decode_cursor(cursor, tag_scope("", viewer_id))
            return Page([], None)
        audience = self.viewing.audience(viewer)
        page = await self.photos.live_page(
            lambda before, n: self.index.tag_photo_ids(tag, before, n),
            cursor,
            limit,
            self._filed(tag, audience),
            tag_scope(tag, viewer_id),
        )
        return await self.viewing.cards_page(audience, page)

    async def search(
        self, viewer: User | None, raw_prefix: str | None, limit: int, address: str = ""
    ) -> list[str]:
        """Tags starting with a prefix that have a photo ``viewer`` may see, in order, at
        most ``min(limit, MAX_TAGS_LISTED)``; limited per client address, as a title
        search is, when ``viewer`` is None."""
        prefix = parse_prefix(raw_prefix)
        if viewer is None:
            # SECURITY: each listed tag costs a read of its rows; counted per address.
            await self.viewing.searches.take(address, "searches without a token from this address")
        if prefix is None:  # starts no tag
            return []
        want = max(1, min(limit, MAX_TAGS_LISTED))
        audience = self.viewing.audience(viewer)
        found: list[str] = []
        after: str | None = None
        for _ in range(TAG_SEARCH_ROUNDS):
            candidates = await self.index.tags_from(prefix, after, want)
            seen = await asyncio.gather(*(self._sees_any(audience, t) for t in candidates))
            found += [t for t, ok in zip(candidates, seen, strict=True) if ok]
            if len(found) >= want or len(candidates) < want:
                break
            after = candidates[-1]
        return found[:want]

    async def _sees_any(self, audience: Audience, tag: str) -> bool:
        """Whether one of the tag's ``PROBE`` newest rows is a photo the viewer sees (a
        tag whose visible photos are all older is not listed: never one with none)."""
        ids = await self.index.tag_photo_ids(tag, None, PROBE)
        return bool(await self._filed(tag, audience)(await self.photos.live(ids)))

    # ---- the title edit ----------------------------------------------------------------

    async def retitle(self, editor: User, photo_id: int, raw_title: object) -> PhotoCard:
        """Set a photo's title (its owner only), its indexes following."""
        # SECURITY: a photo the editor may not see is 404 as a missing one; 403 only for
        # one they see but do not own (as delete).
        photo = await self.viewing.photo(editor, photo_id)
        if photo.owner_id != editor.id:
            raise NotAllowed("only the owner can edit a photo's title")
        title = check_title(raw_title, self.settings.max_title_chars)
        if self.on_retitled is not None:
            await self.on_retitled(editor, photo, title)
        terms = list(dict.fromkeys([*search.terms(photo.title), *search.terms(title)]))
        tags = list(dict.fromkeys([*title_tags(photo.title), *title_tags(title)]))
        await self.index.index_title(photo.id, terms, tags)
        if await self.index.set_title(photo.id, title) is None:
            raise NotFound(f"no photo {photo_id}")  # deleted meanwhile
        await self.converge(photo.id)
        self.photos.records.drop(photo.id)
        return await self.viewing.card(editor, photo.id)

    async def converge(self, photo_id: int) -> None:
        """Bring the photo's index rows to its record's title: its terms' and tags' rows
        written, every other row an edit or an upload remembered removed. Read again
        after: an edit that landed meanwhile is brought in too (its rows may have just
        been removed here)."""
        for _ in range(TITLE_EDIT_ROUNDS):
            photo = await self.photos.photos.get_photo(photo_id)
            if photo is None:  # purged: purge removes every remembered row
                return
            terms, tags = search.terms(photo.title), title_tags(photo.title)
            await self.index.index_title(photo_id, terms, tags)
            await self.index.unindex_title(photo_id, terms, tags)
            again = await self.photos.photos.get_photo(photo_id)
            if again is None or again.title == photo.title:
                return
        raise Unavailable(f"the title of photo {photo_id} is changing too fast; try again")
