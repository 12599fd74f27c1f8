"""The README's curl session works exactly as written (only the base URL's port differs)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .. import samples
from ..serving import serve

README = Path(__file__).resolve().parents[2] / "README.md"


def session_script() -> str:
    text = README.read_text()
    match = re.search(r"<!-- curl-session -->\n```sh\n(.*?)```", text, re.S)
    assert match, "README.md has no curl session block"
    return match.group(1)


@pytest.fixture
def served(tmp_path):
    with serve({"INSTASTORE_DATA_DIR": str(tmp_path / "data")}, tmp_path / "serve.log") as port:
        yield port


def test_the_curl_session(served, tmp_path):
    for tool in ("curl", "jq", "file"):
        assert shutil.which(tool), (
            f"{tool} is needed by the README's session (scripts/bootstrap installs it)"
        )
    (tmp_path / "photo.jpg").write_bytes(samples.image("JPEG", (1200, 800)))
    script = session_script().replace("B=http://127.0.0.1:8080", f"B=http://127.0.0.1:{served}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert '"username": "ada"' in out and '"username": "bob"' in out
    assert '{"state": "following"}' in out
    # timeline, search, restore, oEmbed
    assert out.count('"title":"Sunset over the bay"') == 4
    assert '<meta property="og:image:width" content="1080">' in out
    assert '{"type":"photo","title":"Sunset over the bay","width":1080,"height":720}' in out
    assert "thumb.jpg: JPEG image data" in out and "150x150" in out
    assert "\n204\n" in out
