"""Title search terms: the one normalisation that indexing and querying share, and the
order an index takes a query's terms in.

Lower case (casefold), accents folded (NFKD, combining marks dropped), split on
anything that is not a letter or digit. Every word of a query must match.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from instastore.limits import MAX_TERM_LENGTH, MAX_TERMS_PER_TITLE

# Postings of each term an index may count (below the cursor) to tell the rarest: a term
# with fewer is walked whatever its length; past it, terms count as equally common.
RARITY_PROBE = 256
_SPLIT = re.compile(r"[^\w]+|_+")


def fold(text: str) -> str:
    # Compatibility forms first (so U+1D468, a bold italic "A", becomes "A" before case
    # folding), then case folding, then once more: folding can produce characters that
    # decompose further.
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def terms(text: str) -> list[str]:
    """The distinct search terms of ``text``, in first-seen order."""
    seen: dict[str, None] = {}
    for word in _SPLIT.split(fold(text)):
        if word and len(word) <= MAX_TERM_LENGTH:
            seen.setdefault(word, None)
        if len(seen) >= MAX_TERMS_PER_TITLE:
            break
    return list(seen)


def walk_order(terms: Iterable[str], rarity: Mapping[str, int]) -> list[str]:
    """The distinct ``terms`` in the order a search takes them: it walks the postings of
    the first and probes the others for each. The rarest first, as ``rarity`` tells (the
    postings, or the buckets, the index has of each, possibly counted only up to a cap);
    of equals the longest, usually the rarer word. Walking a common word to find a rare
    one read every posting of the common word up to the budget: "sunset 4" read 5,000
    postings, and its cursors led through all of "sunset", to find one photo."""
    return sorted(set(terms), key=lambda term: (rarity[term], -len(term), term))
