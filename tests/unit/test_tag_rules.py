"""Which words of a title are tags, and how a client's tag or prefix is read: folded by
search's own function, so a tag is always one of its title's search terms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instastore import search
from instastore.errors import InvalidInput
from instastore.limits import MAX_TAGS_PER_TITLE
from instastore.tags import parse_prefix, parse_tag, title_tags


@pytest.mark.parametrize(
    ("title", "tags"),
    [
        ("#Sunset at the #BEACH", ["sunset", "beach"]),
        ("#café #CAFE #Café", ["cafe"]),  # folded as search folds: one tag
        ("mail a#b or &#35;c or ##d", []),  # inside a word, an entity, a double '#'
        ("#sun_set #sun-set #sun.", ["sun"]),  # anything but a letter or digit ends it
        ("photo #1 of #2024trip", ["2024trip"]),  # digits alone are no tag
        ("#ﬁsh", ["fish"]),  # a ligature folds to its letters
        ("#a\u00bd", []),  # folds to two words: no tag
        ("#" + "x" * 65, []),  # longer than a search term
    ],
)
def test_the_tags_of_a_title(title, tags):
    assert title_tags(title) == tags


def test_a_title_has_at_most_so_many_tags():
    title = " ".join(f"#t{k}x" for k in range(MAX_TAGS_PER_TITLE + 5))
    assert title_tags(title) == [f"t{k}x" for k in range(MAX_TAGS_PER_TITLE)]


@given(st.text(max_size=80))
def test_every_tag_is_one_search_word_and_names_itself(title):
    """A tag as the service lists it, asked for again, is the same tag."""
    for tag in title_tags(title):
        assert search.terms(tag) == [tag]
        assert parse_tag(tag) == tag


def test_a_client_names_a_tag_with_or_without_its_hash():
    assert parse_tag("#Café") == parse_tag("CAFE") == "cafe"
    assert parse_prefix("#Ca") == "ca"


@pytest.mark.parametrize("bad", [None, "", "#", "a_b", "a b", "x" * 65, "#a#b", "a.b"])
def test_a_tag_not_of_the_declared_shape_is_refused(bad):
    with pytest.raises(InvalidInput):
        parse_tag(bad)


@pytest.mark.parametrize("word", ["2024", "a\u00bd", "\u00bf", "\u0663"])
def test_a_word_of_the_shape_that_no_title_can_tag_names_no_tag(word):
    assert parse_tag(word) is None


@pytest.mark.parametrize("bad", [None, "", "a", "#a", "a-b", "x" * 65])
def test_a_short_or_bad_prefix_is_refused(bad):
    with pytest.raises(InvalidInput):
        parse_prefix(bad)


def test_a_prefix_that_folds_to_no_start_of_a_tag_is_none():
    assert parse_prefix("\u00bf\u00bf") is None
    assert parse_prefix("\u1e9e\u0301") == "ss"  # folding may lengthen it
