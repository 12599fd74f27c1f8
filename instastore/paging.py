"""Opaque page cursors.

A cursor is the last id of the page it follows, tagged with a format letter and encoded
base64url, so clients treat it as a token and a changed format fails loudly as
``BadCursor`` (400) rather than paging wrongly.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import Generic, TypeVar

from instastore.errors import BadCursor

T = TypeVar("T")
_TAG = b"i1"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None: this is the last page


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(_TAG + struct.pack(">Q", last_id)).rstrip(b"=").decode()


def _unpack(cursor: str, tag: bytes, layout: str, what: str) -> tuple:
    size = len(tag) + struct.calcsize(layout)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadCursor(f"cursor {cursor[:40]!r} is not {what}") from exc
    if len(raw) != size or not raw.startswith(tag):
        raise BadCursor(f"cursor {cursor[:40]!r} is not {what}")
    return struct.unpack(layout, raw[len(tag):])


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor carries; None for no cursor (the first page)."""
    if cursor is None or cursor == "":
        return None
    (value,) = _unpack(cursor, _TAG, ">Q", "one this service made")
    if not 0 < value < 2**63:
        raise BadCursor(f"cursor {cursor[:40]!r} is out of range")
    return value


_TOP_TAG = b"t1"


def encode_top_cursor(window_top: int, offset: int) -> str:
    """A cursor into a ranked window: the newest id of the window and how far in we are."""
    return base64.urlsafe_b64encode(_TOP_TAG + struct.pack(">QI", window_top, offset)).rstrip(b"=").decode()


def decode_top_cursor(cursor: str | None) -> tuple[int, int] | None:
    if cursor is None or cursor == "":
        return None
    window_top, offset = _unpack(cursor, _TOP_TAG, ">QI", "a top-timeline cursor")
    return window_top, offset
