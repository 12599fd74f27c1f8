"""Logging for the ``instastore`` command: each command configures it once, at the level
its settings name (or quieter), before it does anything that logs. Nothing else in
instastore configures logging."""

from __future__ import annotations

import logging


def configure(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
