"""Opaque cursors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instastore.errors import BadCursor
from instastore.paging import decode_cursor, encode_cursor


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_round_trip(i):
    cursor = encode_cursor(i)
    assert cursor.isascii() and "=" not in cursor
    assert decode_cursor(cursor) == i


def test_no_cursor_is_the_first_page():
    assert decode_cursor(None) is None
    assert decode_cursor("") is None


@pytest.mark.parametrize(
    "cursor", ["nope", "!!!!", "aTEAAAAAAAAAAA", encode_cursor(5)[:-2], "aTIAAAAAAAAAAQ"]
)
def test_bad_cursors(cursor):
    with pytest.raises(BadCursor):
        decode_cursor(cursor)
