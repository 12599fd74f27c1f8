"""Cursors are sealed (encrypted and authenticated) with the
deployment's key; a cursor made or changed by hand, or sealed with another key, is a
BadCursor (400). The round-trip and bad-cursor tests of ``test_paging.py`` still hold."""

from __future__ import annotations

import base64
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instastore import paging
from instastore.errors import BadCursor

LIST = paging.Scope("user photos", (1, 0))
CURSORS = paging.Cursors()  # sealed under a random key of its own


@pytest.fixture
def key():
    """A key of this test's deployment."""
    return os.urandom(paging.KEY_BYTES)


def raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_a_cursor_shows_nothing_of_its_id(i):
    cursor = CURSORS.encode_cursor(i, LIST)
    assert struct.pack(">Q", i)[:6] not in raw(cursor)  # not even the time bits
    # random nonce: the same place seals differently
    assert CURSORS.encode_cursor(i, LIST) != cursor
    assert CURSORS.decode_cursor(cursor, LIST) == i


def test_forged_changed_and_foreign_cursors_are_refused(key):
    cursors = paging.Cursors(key)
    cursor = cursors.encode_cursor(123456789, LIST)
    old_format = (
        base64.urlsafe_b64encode(b"i1" + struct.pack(">Q", 123456789)).rstrip(b"=").decode()
    )
    data = bytearray(raw(cursor))
    for index in (0, paging.NONCE_BYTES, len(data) - 1):  # nonce, ciphertext, tag
        changed = bytearray(data)
        changed[index] ^= 1
        with pytest.raises(BadCursor):
            cursors.decode_cursor(
                base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode(), LIST
            )
    with pytest.raises(BadCursor):
        cursors.decode_cursor(old_format, LIST)
    top = cursors.encode_top_cursor([123456789, 20], LIST)
    with pytest.raises(BadCursor):
        cursors.decode_cursor(top, LIST)  # a top cursor is not an id cursor, and back
    with pytest.raises(BadCursor):
        cursors.decode_top_cursor(cursor, LIST)
    assert cursors.decode_top_cursor(top, LIST) == (123456789, 20)
    cursors = paging.Cursors(os.urandom(paging.KEY_BYTES))  # another deployment
    with pytest.raises(BadCursor):
        cursors.decode_cursor(cursor, LIST)
    # the same key again, as another worker of this deployment holds it
    cursors = paging.Cursors(key)
    assert cursors.decode_cursor(cursor, LIST) == 123456789


def test_a_short_key_is_refused():
    with pytest.raises(ValueError):
        paging.Cursors(b"short")


def test_a_cursor_opens_only_for_the_list_it_was_made_for(key):
    """The list's kind, whose it is and who reads it are sealed into the tag: any other
    list refuses the cursor like a forged one."""
    cursors = paging.Cursors(key)
    lists = [
        LIST,
        paging.Scope("user photos", (2, 0)),  # another user's photos
        paging.Scope("user photos", (1, 7)),  # the same photos, another viewer
        paging.Scope("search", (0, "sunset")),
        paging.Scope("search", (0, "sunset", "harbour")),
        paging.Scope("search", (0, "sunset harbour")),
        paging.Scope("followers", (1,)),
        paging.Scope("following", (1,)),
        paging.Scope("timeline recent", (1,)),
    ]
    for made_for in lists:
        cursor = cursors.encode_cursor(123456789, made_for)
        for scope in lists:
            if scope == made_for:
                assert cursors.decode_cursor(cursor, scope) == 123456789
            else:
                with pytest.raises(BadCursor, match="for this list"):
                    cursors.decode_cursor(cursor, scope)


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=120))
def test_cursors_of_many_values_round_trip_and_show_nothing(values):
    """The keystream covers a payload of any length."""
    cursor = CURSORS._seal(LIST, b"s", values)
    assert CURSORS._open(cursor, LIST) == (b"s", tuple(values))
    for value in values:
        assert struct.pack(">Q", value)[:6] not in raw(cursor) or value < 2**16
