"""Under CI nothing skips: a test, a fixture or a whole module that skips is a failure
there, and stays a skip with its reason in a plain local ``pytest``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SKIPPING = {
    "test_in_the_test.py": "import pytest\n\ndef test_it():\n    pytest.skip('no tool')\n",
    "test_by_marker.py": (
        "import pytest\n\n@pytest.mark.skipif(True, reason='no tool')\ndef test_it():\n    pass\n"
    ),
    "test_whole_module.py": (
        "import pytest\n\npytest.importorskip('no_such_module_anywhere')\n\n"
        "def test_it():\n    pass\n"
    ),
    "test_missing_service.py": (
        "from tests.required import missing\n\ndef test_it():\n    missing('no service')\n"
    ),
}


def run_pytest(folder: Path, required: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "INSTASTORE_REQUIRE_CLUSTER")}
    if required:
        env["CI"] = "true"
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.required", "-p", "no:cacheprovider"),
            *("-q", "-rfEs", "--rootdir", str(folder), "-c", os.devnull, str(folder)),
        ],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", sorted(SKIPPING))
def test_a_skip_fails_under_ci_and_skips_locally(tmp_path, name):
    (tmp_path / name).write_text(SKIPPING[name])
    under_ci = run_pytest(tmp_path, required=True)
    assert under_ci.returncode in (1, 2), under_ci.stdout  # tests failed; collection failed
    assert "(required: CI=true or INSTASTORE_REQUIRE_CLUSTER=1)" in under_ci.stdout
    assert "skipped" not in under_ci.stdout.splitlines()[-1]
    local = run_pytest(tmp_path, required=False)
    assert local.returncode in (0, 5), local.stdout  # passed; a skipped module ran no test
    assert "1 skipped" in local.stdout.splitlines()[-1]
