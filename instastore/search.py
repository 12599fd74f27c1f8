"""Title search terms: the one normalisation that indexing and querying share.

Lower case (casefold), accents folded (NFKD, combining marks dropped), split on
anything that is not a letter or digit. Every word of a query must match.
"""

from __future__ import annotations

import re
import unicodedata

from instastore.limits import MAX_TERM_LENGTH, MAX_TERMS_PER_TITLE

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
