"""``@name`` mentions in titles and comments: what is a mention, folded as usernames
are, each once, at most a limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instastore.accounts import USERNAME
from instastore.text import mentions


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("hi @ada", ["ada"]),
        ("@Ada and @BOB_1 at the beach", ["ada", "bob_1"]),  # folded as usernames are
        ("thanks @ada.", ["ada"]),  # the sentence's full stop is not the name's
        ("@ada.lovelace!", ["ada.lovelace"]),
        ("(@ada), @bob; @cy_", ["ada", "bob", "cy_"]),
        ("@ada @ada @ADA", ["ada"]),  # each once, in order of first mention
        ("mail bob@example.com", []),  # inside a word or an address: no mention
        ("@@ada", []),
        ("@ab is too short", []),
        ("@" + "a" * 31, []),  # longer than any username: nobody's
        ("@" + "a" * 30, ["a" * 30]),
        ("@ädå", []),  # not a username's characters
        ("@...", []),
        ("", []),
    ],
)
def test_what_a_mention_is(text, found):
    assert mentions(text, 10) == found


def test_at_most_the_limit_the_first_ones():
    text = " ".join(f"@user{i}" for i in range(15))
    assert mentions(text, 10) == [f"user{i}" for i in range(10)]
    assert mentions(text, 1) == ["user0"]


@given(st.text(max_size=200))
def test_every_mention_is_a_username_and_none_twice(text):
    found = mentions(text, 10)
    assert len(found) == len(set(found)) <= 10
    assert all(USERNAME.fullmatch(name) for name in found)
    assert all(f"@{name}" in text.lower() for name in found)
