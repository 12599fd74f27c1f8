"""The service's clock: timezone-aware UTC now. Services take a ``clock`` callable that
defaults to ``utcnow`` so tests can move time; nothing else here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
