"""Opaque page cursors, sealed with the deployment's key.

A cursor carries where the next page starts: the last id of a page, or for the ranked
timeline the newest id of its window and an offset. Those ids may be of photos the
reader may not see (a page whose photos were all hidden ends on one), so a cursor is
encrypted and authenticated, encrypt-then-MAC with HMAC-SHA256 only (the standard
library): a keystream HMAC(k_enc, nonce) under a random 96-bit nonce, then a 128-bit
HMAC(k_mac, nonce + ciphertext) tag. A cursor tells a client nothing, two cursors for
the same place differ, and one a client made or changed is ``BadCursor`` (400).

The key must be the same in every worker process and every server of a deployment,
which read each other's cursors: the service keeps it in the key store
(``KeyStore.server_key``) and installs it with ``use_key`` at start. Until then a
process seals with a random key of its own (cursors then last as long as the process).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from typing import Generic, TypeVar

from instastore.errors import BadCursor
from instastore.ids import MAX_ID

T = TypeVar("T")
KEY_BYTES = 32  # the deployment's cursor key (HMAC-SHA256 keys of a full block of output)
NONCE_BYTES = 12  # random per cursor: 2**48 cursors before a nonce repeats by chance
TAG_BYTES = 16  # 128-bit authentication tag
_ID = ("i", ">Q")  # kind letter and layout of a plain id cursor
_TOP = ("t", ">QI")  # the ranked timeline's window top and offset


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None: this is the last page


def clamp_limit(limit: int, most: int) -> int:
    """The page size to serve for a requested ``limit``: at least 1, at most ``most``
    (the ``max_page_size`` setting). The one clamp every paged list goes through."""
    return max(1, min(limit, most))


class _Keys:
    def __init__(self, key: bytes) -> None:
        self.enc = hmac.digest(key, b"instastore cursor encryption", hashlib.sha256)
        self.mac = hmac.digest(key, b"instastore cursor authentication", hashlib.sha256)


_keys = _Keys(secrets.token_bytes(KEY_BYTES))


def use_key(key: bytes) -> None:
    """Seal and open cursors with the deployment's key from now on."""
    global _keys
    if len(key) < KEY_BYTES:
        raise ValueError(f"a cursor key has at least {KEY_BYTES} bytes")
    _keys = _Keys(key)


def _xor(data: bytes, nonce: bytes) -> bytes:
    stream = hmac.digest(_keys.enc, nonce, hashlib.sha256)  # 32 bytes: every payload is shorter
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))


def _seal(kind: tuple[str, str], *values: int) -> str:
    letter, layout = kind
    nonce = secrets.token_bytes(NONCE_BYTES)
    body = nonce + _xor(letter.encode() + struct.pack(layout, *values), nonce)
    tag = hmac.digest(_keys.mac, body, hashlib.sha256)[:TAG_BYTES]
    return base64.urlsafe_b64encode(body + tag).rstrip(b"=").decode()


def _open(cursor: str, kind: tuple[str, str], what: str) -> tuple[int, ...]:
    letter, layout = kind
    size = NONCE_BYTES + 1 + struct.calcsize(layout) + TAG_BYTES
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadCursor(f"cursor {cursor[:40]!r} is not {what}") from exc
    body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
    # SECURITY: constant-time check of the tag before anything is decrypted.
    if len(raw) != size or not hmac.compare_digest(
        tag, hmac.digest(_keys.mac, body, hashlib.sha256)[:TAG_BYTES]
    ):
        raise BadCursor(f"cursor {cursor[:40]!r} is not {what}")
    plain = _xor(body[NONCE_BYTES:], body[:NONCE_BYTES])
    if plain[:1] != letter.encode():
        raise BadCursor(f"cursor {cursor[:40]!r} is not {what}")
    return struct.unpack(layout, plain[1:])


def encode_cursor(last_id: int) -> str:
    return _seal(_ID, last_id)


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor carries; None for no cursor (the first page)."""
    if cursor is None or cursor == "":
        return None
    (value,) = _open(cursor, _ID, "one this service made")
    if not 0 < value <= MAX_ID:
        raise BadCursor(f"cursor {cursor[:40]!r} is out of range")
    return value


def encode_top_cursor(window_top: int, offset: int) -> str:
    """A cursor into a ranked window: the newest id of the window and how far in we are."""
    return _seal(_TOP, window_top, offset)


def decode_top_cursor(cursor: str | None) -> tuple[int, int] | None:
    if cursor is None or cursor == "":
        return None
    window_top, offset = _open(cursor, _TOP, "a top-timeline cursor")
    return window_top, offset
