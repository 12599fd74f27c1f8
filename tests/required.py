"""Whether this run requires every service and tool the tests use, and what a missing one
means: under CI (``CI=true``) or with ``INSTASTORE_REQUIRE_CLUSTER=1`` a failure, otherwise
a skip with the reason, so a newcomer can run the embedded tests alone with a plain
``pytest``.

``missing`` is the one way a test or fixture says a service or tool is missing. The two
hooks below (tests/conftest.py imports them, so pytest runs them) hold every other skip
to the same rule: when the run is required, a test or a module that skips anyway (an
``importorskip``, a ``skipif``, a library's own skip) is reported as failed."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import NoReturn

import pytest

REQUIRED = (
    os.environ.get("CI", "").lower() == "true"
    or os.environ.get("INSTASTORE_REQUIRE_CLUSTER") == "1"
)
RULE = "required: CI=true or INSTASTORE_REQUIRE_CLUSTER=1"


def missing(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Fail (under CI) or skip the test, or the whole module, for want of ``reason``."""
    if REQUIRED:
        pytest.fail(f"{reason} ({RULE})", pytrace=False)
    pytest.skip(reason, allow_module_level=allow_module_level)


def _no_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if REQUIRED and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped where nothing may skip ({RULE}): {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _no_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _no_skip(report)
    return report
