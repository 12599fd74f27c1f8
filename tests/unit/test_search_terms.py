"""Title normalisation, shared by indexing and querying."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from instastore import search


def test_case_accents_and_punctuation():
    assert search.terms("Crème BRÛLÉE, at the Café!") == ["creme", "brulee", "at", "the", "cafe"]
    assert search.terms("sunset_over-the.bay 2026") == ["sunset", "over", "the", "bay", "2026"]
    assert search.terms("Straße") == ["strasse"]


def test_duplicates_and_empties():
    assert search.terms("la la LA") == ["la"]
    assert search.terms("  ...  ") == []


def test_bounded():
    assert len(search.terms(" ".join(f"w{i}" for i in range(1000)))) == search.MAX_TERMS_PER_TITLE
    assert search.terms("x" * 65 + " ok") == ["ok"]


def test_compatibility_forms_fold_to_plain_lower_case():
    # The look-alike characters are the test data: mathematical bold italic, full width.
    assert search.terms("𝑨𝒅𝒂 ＬＯＶＥ") == ["ada", "love"]  # noqa: RUF001


@settings(max_examples=2000)
@given(st.text())
def test_terms_are_idempotent(text):
    once = search.terms(text)
    assert search.terms(" ".join(once)) == once
