"""The command blocks of docs/OPERATIONS.md, each marked ``<!-- runbook:NAME -->``, run
as written (tests/commands/test_runbook.py checks that every block is run by some test)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "OPERATIONS.md"
BLOCK = re.compile(r"<!-- runbook:([a-z-]+) -->\n```sh\n(.*?)```", re.S)


def blocks() -> dict[str, str]:
    return dict(BLOCK.findall(OPERATIONS.read_text()))


def run_block(
    name: str,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 1800,
    port: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the block ``name`` with bash (-e: the first failing command fails it), with
    this interpreter's ``instastore`` first on the PATH and ``env`` (INSTASTORE_*); with
    ``port``, the service's default address 127.0.0.1:8080 becomes that port (as the
    README's curl session is run)."""
    script = blocks()[name]
    if port is not None:
        script = script.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    bin_dir = str(Path(sys.executable).parent)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, **env, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
