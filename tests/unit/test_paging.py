"""Opaque cursors, each bound to its list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instastore.errors import BadCursor
from instastore.paging import Cursors, Scope, clamp_limit

LIST = Scope("user photos", (1, 0))
CURSORS = Cursors()  # sealed under a random key of its own


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_round_trip(i):
    cursor = CURSORS.encode_cursor(i, LIST)
    assert cursor.isascii() and "=" not in cursor
    assert CURSORS.decode_cursor(cursor, LIST) == i


def test_no_cursor_is_the_first_page():
    assert CURSORS.decode_cursor(None, LIST) is None
    assert CURSORS.decode_cursor("", LIST) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "nope",
        "!!!!",
        "aTEAAAAAAAAAAA",
        # Sealed anew in each process: a fixed id, so every xdist worker collects the same.
        pytest.param(CURSORS.encode_cursor(5, LIST)[:-2], id="cut-short"),
        "A" * 3000,
        "aTIAAAAAAAAAAQ",
    ],
)
def test_bad_cursors(cursor):
    with pytest.raises(BadCursor):
        CURSORS.decode_cursor(cursor, LIST)


@given(st.integers(min_value=-(2**31), max_value=2**31), st.integers(min_value=1, max_value=500))
def test_every_page_size_is_clamped_to_one_through_the_most(limit: int, most: int) -> None:
    served = clamp_limit(limit, most)
    assert 1 <= served <= most
    assert served == limit or not 1 <= limit <= most
