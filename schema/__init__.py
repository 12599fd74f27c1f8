"""Versioned schema files, shipped as package data (``instastore.schema``).

``cql/NNN_name.cql`` for Cassandra, ``sqlite/NNN_name.sql`` for the embedded store.
A released file is never edited: a change is a new file with the next number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.(cql|sql)$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    def statements(self) -> list[str]:
        """The file's statements: ``--`` comments dropped, split on ``;`` at line ends."""
        lines = [line.split("--", 1)[0].rstrip() for line in self.text.splitlines()]
        body = "\n".join(line for line in lines if line.strip())
        return [s.strip() for s in re.split(r";\s*\n|;\s*$", body) if s.strip()]


def migrations(kind: str) -> list[Migration]:
    """Every migration of ``kind`` ("cql" or "sqlite"), in version order."""
    folder = resources.files("instastore.schema").joinpath(kind)
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"schema/{kind} versions must be 1..n without gaps, found {versions}")
    return found
