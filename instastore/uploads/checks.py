"""The checks of what an upload comes with besides its bytes: its title, its visibility
and its Idempotency-Key. Each refusal is an ``InvalidInput`` (400) that says what is
allowed; nothing here reads a store."""

from __future__ import annotations

from instastore.errors import InvalidInput
from instastore.limits import MAX_IDEMPOTENCY_KEY
from instastore.model import Visibility
from instastore.text import check_text


def check_title(title: object, max_chars: int) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput("title is required")
    title = title.strip()
    if len(title) > max_chars:
        raise InvalidInput(f"title is {len(title)} characters; the limit is {max_chars}")
    return check_text(title, "title")


def check_visibility(value: str | None) -> Visibility:
    try:
        return Visibility(value or "public")
    except ValueError:
        raise InvalidInput("visibility must be public, followers or private") from None


def check_idempotency_key(key: object) -> str | None:
    if key is None:
        return None
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY
        or not key.isprintable()
    ):
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"
        )
    return key
