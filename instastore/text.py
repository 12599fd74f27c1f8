"""Text that one user types and others read (titles, display names): which characters
are refused, and how the refusal names them.

Refused: control characters (C0, DEL, C1: U+0000-U+001F, U+007F-U+009F; NUL truncates
strings in C code downstream, newlines forge log lines and CSV rows), lone surrogates
(not text; they break every UTF-8 encoder downstream), the line and paragraph
separators, and every invisible format character (Unicode category Cf) that text does
not need: the bidirectional embeddings, overrides and isolates (U+202A-U+202E,
U+2066-U+2069: they reorder what a reader sees, "Trojan Source"), the left-to-right and
right-to-left marks, zero-width spaces, the byte-order mark, interlinear annotation, and
the tag characters (U+E0000-U+E007F: invisible ASCII that smuggles hidden text) except
in the emoji flag sequences that need them. Allowed format characters: the zero-width
non-joiner and joiner (Persian, Indic scripts, emoji sequences), the soft hyphen, and
the visible prepended concatenation marks (Arabic number signs and their kin).
Refusing rather than stripping keeps what is stored exactly what the user sent (but for
whitespace trimmed at both ends), and tells them why.
"""

from __future__ import annotations

import re
import unicodedata

from instastore.errors import InvalidInput

# Format characters (Cf) that text needs; every other one is refused.
_NEEDED_FORMAT = {
    0x00AD,  # soft hyphen
    0x200C,
    0x200D,  # zero-width non-joiner and joiner
    *range(0x0600, 0x0606),
    0x06DD,
    0x070F,
    0x0890,
    0x0891,
    0x08E2,
    0x110BD,
    0x110CD,  # visible number signs
}
BLACK_FLAG = "\U0001f3f4"  # the base of emoji subdivision flags (England, Scotland, Wales)
_FLAG_TAGS = range(0xE0020, 0xE0080)  # tag letters and digits, and the cancel tag that ends a flag


def refused(ch: str) -> bool:
    """Whether ``ch`` may not appear in text other users read (outside emoji flags)."""
    category = unicodedata.category(ch)
    # SECURITY: controls, surrogates, line/paragraph separators, invisible formatting.
    if (
        category in ("Cc", "Cs", "Zl", "Zp") or 0xE0000 <= ord(ch) <= 0xE007F
    ):  # the tag block, assigned or not
        return True
    return category == "Cf" and ord(ch) not in _NEEDED_FORMAT


def _in_flag(value: str, index: int) -> bool:
    """Whether the character at ``index`` is a tag of an emoji flag sequence."""
    start = index
    while start > 0 and ord(value[start - 1]) in _FLAG_TAGS:
        start -= 1
    return ord(value[index]) in _FLAG_TAGS and start > 0 and value[start - 1] == BLACK_FLAG


def check_text(value: str, field: str) -> str:
    """``value`` unchanged, or ``InvalidInput`` naming the first refused character."""
    for index, ch in enumerate(value):
        if refused(ch) and not _in_flag(value, index):
            name = unicodedata.name(
                ch, "a lone surrogate" if 0xD800 <= ord(ch) <= 0xDFFF else "a control character"
            )
            raise InvalidInput(
                f"{field} contains U+{ord(ch):04X} ({name}) at position {index}: control and"
                " invisible formatting characters are not allowed"
            )
    return value


# An @name: "@" not inside a word or an e-mail address (bob@example.com), then what a
# username is made of, folded to lower case as usernames are (``accounts.USERNAME``:
# 3-30 of a-z, 0-9, "_" and "."), and not followed by more of it (a longer run is no one's
# name). Dots that end it are the sentence's ("thanks @ada.").
_MENTION = re.compile(r"(?<![A-Za-z0-9_.@])@([A-Za-z0-9_.]{3,30})(?![A-Za-z0-9_.@])")


def mentions(value: str, most: int) -> list[str]:
    """The usernames ``value`` mentions with ``@name``, folded, each once, in order of
    first mention, at most ``most`` of them (the rest are plain text)."""
    found: list[str] = []
    for match in _MENTION.finditer(value):
        name = match.group(1).rstrip(".").lower()
        if len(name) >= 3 and name not in found:
            found.append(name)
            if len(found) == most:
                break
    return found
