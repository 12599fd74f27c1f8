"""Reports and takedowns: users report a photo, a comment or an account; operators work
through the reports (``instastore moderation``), hiding an item or leaving it up.

- Reporting: a user reports what they may see (anything else is ``NotFound``, as for a
  missing item), never their own (``NotAllowed``), with one of ``REASONS`` and optional
  words checked as titles are (``instastore.text``; at most ``MAX_NOTE_CHARS``). One
  report per reporter and item: reporting again replaces the reason. Each user files at
  most ``reports_per_minute`` on all hosts together (``SharedLimit``; ``RateLimited``),
  counted after the checks, so a refused report spends nothing.
- Hiding: a hidden item answers 404 to everyone but its owner, decided where
  visibility is (``social.Audience``: a hidden photo, a hidden account's everything, a
  hidden comment but to its author). The serving process that hides it (``on_change``)
  hides it at once, every other within ``RECORD_TTL_S`` (each keeps what it read for
  that long: the media route reads it for every request); shared HTTP caches keep what
  they had of a public photo's media until it expires. ``--blocklist`` also refuses the
  photo's original bytes at upload from then on (``blocklisted``: 451).
- Restoring shows the item again. Hiding and restoring both close the item's reports.
  Each step is idempotent and the reports close last, so a takedown cut short stays
  listed and running it again finishes it.

It never speaks HTTP, and reaches the stores only through its ports.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from instastore.clock import utcnow
from instastore.comments import Comments
from instastore.errors import InvalidInput, NotAllowed, NotFound
from instastore.model import User
from instastore.ratelimit import SharedLimit
from instastore.social import Social
from instastore.storage.ports import AccountStore, ModerationStore, PhotoStore, Report, ReportKey
from instastore.text import check_text
from instastore.viewing import Viewing, owns

KINDS = ("photo", "comment", "account")
REASONS = (
    "spam",
    "nudity",
    "violence",
    "harassment",
    "hate",
    "self_harm",
    "intellectual_property",
    "other",
)
MAX_NOTE_CHARS = 500  # a reporter's words: enough to say why, not a place to post


def check_reason(reason: object) -> str:
    if not isinstance(reason, str) or reason not in REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(REASONS)}")
    return reason


def check_note(note: object) -> str:
    """The reporter's optional words: trimmed, at most ``MAX_NOTE_CHARS``, and checked
    as titles are; none is the empty string."""
    if note is None:
        return ""
    if not isinstance(note, str):
        raise InvalidInput("text must be a string")
    note = note.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidInput(f"text is {len(note)} characters; the limit is {MAX_NOTE_CHARS}")
    return check_text(note, "text")


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
    return kind


class Reports:
    """What users report."""

    def __init__(
        self,
        store: ModerationStore,
        viewing: Viewing,
        comments: Comments,
        social: Social,
        limit: SharedLimit,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.viewing = viewing
        self.comments = comments
        self.social = social
        self.limit = limit  # reports per user per minute, on every host
        self.clock = clock

    async def _file(
        self, viewer: User, kind: str, item_id: int, reason: object, note: object
    ) -> None:
        report = Report(
            kind, item_id, viewer.id, check_reason(reason), check_note(note), self.clock()
        )
        # SECURITY: counted on every host, after the checks, so a refused report spends
        # nothing; a flood of reports cannot bury the operators' queue.
        await self.limit.take(viewer.id, "reports")
        await self.store.add_report(report)

    async def photo(self, viewer: User, photo_id: int, reason: object, note: object) -> None:
        check_reason(reason)  # a bad body is a 400 before any read
        check_note(note)
        photo = await self.viewing.photo(viewer, photo_id)
        if owns(viewer, photo):
            raise NotAllowed("you may not report your own photo")
        await self._file(viewer, "photo", photo.id, reason, note)

    async def comment(
        self, viewer: User, photo_id: int, comment_id: int, reason: object, note: object
    ) -> None:
        check_reason(reason)
        check_note(note)
        comment = await self.comments.shown_comment(viewer, photo_id, comment_id)
        if comment.author_id == viewer.id:
            raise NotAllowed("you may not report your own comment")
        await self._file(viewer, "comment", comment.id, reason, note)

    async def account(self, viewer: User, username: str, reason: object, note: object) -> None:
        check_reason(reason)
        check_note(note)
        user = await self.social.named(username, viewer)
        if user.id == viewer.id:
            raise NotAllowed("you may not report yourself")
        await self._file(viewer, "account", user.id, reason, note)


class Moderation:
    """What operators do with reports (``instastore moderation``)."""

    def __init__(
        self,
        store: ModerationStore,
        photos: PhotoStore,
        accounts: AccountStore,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.photos = photos
        self.accounts = accounts
        self.clock = clock
        # Told of an item hidden or shown again (the serving process's cache drops it).
        self.on_change: Callable[[int], None] | None = None

    def _changed(self, item_id: int) -> None:
        if self.on_change is not None:
            self.on_change(item_id)

    async def open_reports(self, after: ReportKey | None, limit: int) -> list[Report]:
        return await self.store.reports(after, limit)

    async def _check(self, kind: str, item_id: int) -> None:
        """``NotFound`` for a photo or account that is not stored (a comment is hidden by
        its id alone: a report names no photo to look it up under)."""
        if kind == "photo" and await self.photos.get_photo(item_id) is None:
            raise NotFound(f"no photo {item_id}")
        if kind == "account" and await self.accounts.get_user(item_id) is None:
            raise NotFound(f"no account {item_id}")

    async def hide(self, kind: str, item_id: int, blocklist: bool = False) -> str | None:
        """Hide the item and close its reports; with ``blocklist`` (photos only) refuse
        its original's bytes at upload too. The sha256 added, if any."""
        check_kind(kind)
        if blocklist and kind != "photo":
            raise InvalidInput("--blocklist takes a photo: only a photo has an original")
        await self._check(kind, item_id)
        await self.store.set_hidden(item_id, kind, self.clock())
        self._changed(item_id)
        digest = None
        if blocklist:
            photo = await self.photos.get_photo(item_id)
            if photo is None:
                raise NotFound(f"no photo {item_id}")
            digest = photo.sha256
            await self.store.add_to_blocklist(digest, photo.id, self.clock())
        await self.store.resolve_reports(kind, item_id)
        return digest

    async def restore(self, kind: str, item_id: int) -> None:
        """Show the item again and close its reports (the blocklist keeps its hash)."""
        check_kind(kind)
        await self._check(kind, item_id)
        await self.store.set_hidden(item_id, kind, None)
        self._changed(item_id)
        await self.store.resolve_reports(kind, item_id)
