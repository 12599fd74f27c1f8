"""Whether this run requires every service and tool the tests use, and the one way a test
says that one is missing: under CI (``CI=true``) or with ``INSTASTORE_REQUIRE_CLUSTER=1``
a failure, otherwise a skip with the reason, so a newcomer can run the embedded tests
alone with a plain ``pytest``."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRED = (
    os.environ.get("CI", "").lower() == "true"
    or os.environ.get("INSTASTORE_REQUIRE_CLUSTER") == "1"
)


def missing(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Fail (under CI) or skip the test, or the whole module, for want of ``reason``."""
    if REQUIRED:
        pytest.fail(f"{reason} (required: CI=true or INSTASTORE_REQUIRE_CLUSTER=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=allow_module_level)
