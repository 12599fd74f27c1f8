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


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor carries; None for no cursor (the first page)."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadCursor(f"cursor {cursor[:40]!r} is not one this service made") from exc
    if len(raw) != len(_TAG) + 8 or not raw.startswith(_TAG):
        raise BadCursor(f"cursor {cursor[:40]!r} is not one this service made")
    (value,) = struct.unpack(">Q", raw[len(_TAG):])
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
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadCursor(f"cursor {cursor[:40]!r} is not a top-timeline cursor") from exc
    if len(raw) != len(_TOP_TAG) + 12 or not raw.startswith(_TOP_TAG):
        raise BadCursor(f"cursor {cursor[:40]!r} is not a top-timeline cursor")
    window_top, offset = struct.unpack(">QI", raw[len(_TOP_TAG):])
    return window_top, offset
