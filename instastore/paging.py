"""Opaque page cursors, sealed with the deployment's key and bound to their list.

A cursor carries where the next page starts: the last id of a page (or, for a list in
name order, its last name), for the ranked
timeline the rest of its window (at most ``TOP_WINDOW`` ids) and where the older photos
after it start, for a deep timeline page the state of its scan
(``instastore.merge.Position``). Those ids may be of photos the reader may
not see (a page whose photos were all hidden ends on one), so a cursor is encrypted and
authenticated, encrypt-then-MAC with HMAC-SHA256 only (the standard library): a
keystream HMAC(k_enc, nonce + block number) under a random 96-bit nonce, then a 128-bit
HMAC(k_mac, scope + nonce + ciphertext) tag. A cursor tells a client nothing, two
cursors for the same place differ, and one a client made or changed is ``BadCursor``
(400).

Every cursor belongs to one list, its ``Scope``: the kind of list, whose it is (a user,
the words searched) and, where what the list shows depends on it, who reads it. The
scope is authenticated by the tag but not written in the cursor, so a cursor handed to
any other list (or read by another viewer) fails like a forged one: the position of a
photo in one list can never be probed through another.

The key must be the same in every worker process and every server of a deployment,
which read each other's cursors: the service keeps it in the key store
(``KeyStore.server_key``), and ``services.open_services`` hands it to the one ``Cursors``
that the services of a process share. A ``Cursors`` made without a key seals with a
random key of its own (its cursors then last as long as it does). This module holds no
key itself: whoever seals and opens cursors holds the ``Cursors`` they go through.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from instastore.errors import BadCursor
from instastore.ids import MAX_ID

T = TypeVar("T")
KEY_BYTES = 32  # the deployment's cursor key (HMAC-SHA256 keys of a full block of output)
NONCE_BYTES = 12  # random per cursor: 2**48 cursors before a nonce repeats by chance
TAG_BYTES = 16  # 128-bit authentication tag
MAX_CURSOR_CHARS = 2048  # longer is not a cursor of ours: refused before any decoding
_ID = b"i"  # a plain id cursor: the page's last id
_TOP = b"T"  # the ranked timeline: the window's ids still to show, where the older ones start
# The ranked timeline's cursors as made before "top" went on past its window: the window's
# ids still to show and nothing else. Still read (a page in a client's hand when the
# service is upgraded goes on, and ends with the window as it did), never made.
_RANKED_ONLY = b"t"
_SCAN = b"s"  # a deep timeline scan: before, next followee, size, ids found so far
_NAME = b"n"  # a list in name order (accounts by username prefix): the page's last name
NAME_CURSOR_BYTES = 32  # a name cursor's ASCII name, zero-padded (usernames have at most 30)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None: this is the last page


@dataclass(frozen=True)
class Scope:
    """The list a cursor belongs to: its kind, and the ids or words that make it this
    list (whose photos, which words, who reads: 0 for nobody signed in)."""

    kind: str
    identity: tuple[int | str, ...] = ()

    def sealed(self) -> bytes:
        text = json.dumps([self.kind, *self.identity], ensure_ascii=False).encode()
        return struct.pack(">I", len(text)) + text


def clamp_limit(limit: int, most: int) -> int:
    """The page size to serve for a requested ``limit``: at least 1, at most ``most``
    (the ``max_page_size`` setting). The one clamp every paged list goes through."""
    return max(1, min(limit, most))


class Cursors:
    """Seals and opens cursors under one deployment's key (``key``; a random key of its
    own when None)."""

    def __init__(self, key: bytes | None = None) -> None:
        if key is None:
            key = secrets.token_bytes(KEY_BYTES)
        if len(key) < KEY_BYTES:
            raise ValueError(f"a cursor key has at least {KEY_BYTES} bytes")
        self._enc = hmac.digest(key, b"instastore cursor encryption", hashlib.sha256)
        self._mac = hmac.digest(key, b"instastore cursor authentication", hashlib.sha256)

    def _xor(self, data: bytes, nonce: bytes) -> bytes:
        blocks = (len(data) + 31) // 32  # 32 bytes of keystream per block
        stream = b"".join(
            hmac.digest(self._enc, nonce + struct.pack(">I", n), hashlib.sha256)
            for n in range(blocks)
        )
        return bytes(a ^ b for a, b in zip(data, stream, strict=False))

    def _tag(self, scope: Scope, body: bytes) -> bytes:
        return hmac.digest(self._mac, scope.sealed() + body, hashlib.sha256)[:TAG_BYTES]

    def _seal(self, scope: Scope, kind: bytes, values: Sequence[int]) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        body = nonce + self._xor(kind + struct.pack(f">{len(values)}Q", *values), nonce)
        return base64.urlsafe_b64encode(body + self._tag(scope, body)).rstrip(b"=").decode()

    def _open(self, cursor: str, scope: Scope) -> tuple[bytes, tuple[int, ...]]:
        """The kind letter and the values of a cursor sealed for ``scope``."""
        refused = BadCursor(f"cursor {cursor[:40]!r} is not one this service made for this list")
        if len(cursor) > MAX_CURSOR_CHARS:
            raise refused
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as exc:
            raise refused from exc
        body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        size = len(body) - NONCE_BYTES - 1
        # SECURITY: constant-time check of the tag, which covers the list the cursor is
        # for, before anything is decrypted.
        if size < 0 or size % 8 or not hmac.compare_digest(tag, self._tag(scope, body)):
            raise refused
        plain = self._xor(body[NONCE_BYTES:], body[:NONCE_BYTES])
        return plain[:1], struct.unpack(f">{size // 8}Q", plain[1:])

    def _of_kind(
        self, cursor: str, scope: Scope, kind: bytes, count: int | None, what: str
    ) -> tuple[int, ...]:
        letter, values = self._open(cursor, scope)
        if letter != kind or (count is not None and len(values) != count):
            raise BadCursor(f"cursor {cursor[:40]!r} is not {what}")
        return values

    def encode_cursor(self, last_id: int, scope: Scope) -> str:
        return self._seal(scope, _ID, [last_id])

    def decode_cursor(self, cursor: str | None, scope: Scope) -> int | None:
        """The id a cursor of ``scope`` carries; None for no cursor (the first page)."""
        if cursor is None or cursor == "":
            return None
        (value,) = self._of_kind(cursor, scope, _ID, 1, "an id cursor")
        return _in_range(cursor, value)

    def encode_name_cursor(self, last_name: str, scope: Scope) -> str:
        """A cursor after ``last_name`` (ASCII, at most ``NAME_CURSOR_BYTES`` bytes) in a
        list in name order."""
        raw = last_name.encode("ascii")
        if len(raw) > NAME_CURSOR_BYTES or b"\0" in raw:
            raise ValueError(f"a name cursor holds at most {NAME_CURSOR_BYTES} ASCII bytes")
        words = struct.unpack(f">{NAME_CURSOR_BYTES // 8}Q", raw.ljust(NAME_CURSOR_BYTES, b"\0"))
        return self._seal(scope, _NAME, words)

    def decode_name_cursor(self, cursor: str | None, scope: Scope) -> str | None:
        """The name a name cursor of ``scope`` carries; None for no cursor (the first page)."""
        if cursor is None or cursor == "":
            return None
        words = self._of_kind(cursor, scope, _NAME, NAME_CURSOR_BYTES // 8, "a name cursor")
        return struct.pack(f">{len(words)}Q", *words).rstrip(b"\0").decode("ascii")

    def encode_top_cursor(self, values: Sequence[int], scope: Scope) -> str:
        """A cursor into the ranked timeline: its numbers, as ``instastore.timeline`` lays
        them out (the window's ids still to show, then where the older photos start)."""
        return self._seal(scope, _TOP, values)

    def decode_top_cursor(self, cursor: str | None, scope: Scope) -> tuple[int, ...] | None:
        if cursor is None or cursor == "":
            return None
        letter, values = self._open(cursor, scope)
        if letter == _TOP:
            return values
        if letter == _RANKED_ONLY:  # as the new layout: all of them ids, nothing older
            return (len(values), *values)
        raise BadCursor(f"cursor {cursor[:40]!r} is not a top-timeline cursor")

    def encode_scan_cursor(self, values: Sequence[int], scope: Scope) -> str:
        """A cursor into a deep timeline scan (``instastore.merge.Position``'s numbers)."""
        return self._seal(scope, _SCAN, values)

    def decode_recent_cursor(self, cursor: str | None, scope: Scope) -> tuple[int, ...] | None:
        """A "recent" timeline cursor: (before,) of a plain id cursor, or a deep scan's
        numbers as ``encode_scan_cursor`` took them; None for no cursor (the first page)."""
        if cursor is None or cursor == "":
            return None
        letter, values = self._open(cursor, scope)
        if letter == _ID and len(values) == 1:
            return (_in_range(cursor, values[0]),)
        if letter == _SCAN and len(values) >= 3:
            return values
        raise BadCursor(f"cursor {cursor[:40]!r} is not a recent-timeline cursor")


def _in_range(cursor: str, value: int) -> int:
    if not 0 < value <= MAX_ID:
        raise BadCursor(f"cursor {cursor[:40]!r} is out of range")
    return value


R = TypeVar("R")  # a row of a list, as read
K = TypeVar("K")  # where a list goes on: a row's id or name
FILL_READS = 3  # reads of up to a page of rows that one filtered page makes at most


async def fill_page(
    read: Callable[[K | None, int], Awaitable[list[R]]],
    shown: Callable[[list[R]], Awaitable[list[T]]],
    key_of: Callable[[R], K],
    item_key: Callable[[T], K],
    after: K | None,
    limit: int,
) -> tuple[list[T], K | None]:
    """Up to ``limit`` items of a list a viewer sees part of: rows read after ``after``,
    ``shown`` keeping those the viewer sees (in order), read past what it leaves out, up to
    ``FILL_READS`` reads, so a page is short only at the list's end or when that many
    reads found too few: how much is left out shows in no page's size. With the key to go
    on after (None: the list ended there)."""
    items: list[T] = []
    for _ in range(FILL_READS):
        want = limit + 1 - len(items)  # one past the page tells whether more is shown
        rows = await read(after, want)
        items += await shown(rows)
        if len(items) > limit:
            return items[:limit], item_key(items[limit - 1])
        if len(rows) < want:
            return items, None
        after = key_of(rows[-1])
    return items, after
