"""Text that one user types and others read (titles, display names): which characters
are refused, and how the refusal names them.

Refused: C0 and C1 control characters and DEL (U+0000-U+001F, U+007F-U+009F: NUL
truncates strings in C code downstream, newlines forge log lines and CSV rows), the
bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069: they
reorder what a reader sees, "Trojan Source"), lone surrogates (not text; they break
every UTF-8 encoder downstream), and the other invisible format characters that hide or
spoof text: the line and paragraph separators, the left-to-right and right-to-left
marks, zero-width characters other than the joiners emoji need, the byte-order mark,
interlinear annotation, the deprecated format controls, and the tag characters
(U+E0000-U+E007F, invisible ASCII that smuggles hidden text) except in the emoji flag
sequences that need them (a black flag, tags, a cancel tag). Refusing rather than stripping
keeps what is stored exactly what the user sent, and tells them why.
"""

from __future__ import annotations

import unicodedata

from instastore.errors import InvalidInput

# SECURITY: format characters (category Cf) that emoji and scripts do not need. U+200C
# and U+200D (zero-width non-joiner and joiner) are allowed: Persian, Indic scripts and
# emoji sequences need them.
_REFUSED_FORMAT = {
    *range(0x200B, 0x200C),  # zero-width space
    *range(0x200E, 0x2010),  # left-to-right and right-to-left marks
    *range(0x202A, 0x202F),  # bidi embeddings and overrides
    *range(0x2060, 0x2065),  # word joiner, invisible operators
    *range(0x2066, 0x2070),  # bidi isolates, deprecated format controls
    0xFEFF,  # zero-width no-break space (byte-order mark)
    *range(0xFFF9, 0xFFFC),  # interlinear annotation
    0x061C,  # Arabic letter mark
    0x180E,  # Mongolian vowel separator (formerly a space)
}


def refused(ch: str) -> bool:
    """Whether ``ch`` may not appear in text other users read."""
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F:  # C0 controls, DEL, C1 controls
        return True
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate: not text at all
        return True
    if code in (0x2028, 0x2029):  # line and paragraph separators
        return True
    return code in _REFUSED_FORMAT


BLACK_FLAG = "\U0001F3F4"  # the base of emoji subdivision flags (England, Scotland, Wales)
_TAGS = range(0xE0000, 0xE0080)
_FLAG_TAGS = range(0xE0020, 0xE0080)  # tag letters, digits and the cancel tag


def _in_flag(value: str, index: int) -> bool:
    """Whether the tag character at ``index`` belongs to an emoji flag sequence."""
    start = index
    while start > 0 and ord(value[start - 1]) in _FLAG_TAGS:
        start -= 1
    return ord(value[index]) in _FLAG_TAGS and start > 0 and value[start - 1] == BLACK_FLAG


def check_text(value: str, field: str) -> str:
    """``value`` unchanged, or ``InvalidInput`` naming the first refused character."""
    for index, ch in enumerate(value):
        if refused(ch) or (ord(ch) in _TAGS and not _in_flag(value, index)):
            name = unicodedata.name(ch, "a control character" if ord(ch) < 0xD800 else "a lone surrogate")
            raise InvalidInput(
                f"{field} contains U+{ord(ch):04X} ({name}) at position {index}: control and"
                " invisible formatting characters are not allowed"
            )
    return value
