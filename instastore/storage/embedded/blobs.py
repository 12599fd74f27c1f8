"""Local-file blob store: one file per blob under ``<data_dir>/blobs``.

A blob is written to a temporary file, fsynced, renamed into place and its folder
fsynced, so a blob that ``put`` returned is on disk and a crash never leaves half a blob
under a real name. File work runs in the default executor, off the event loop.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from instastore.config import Settings
from instastore.errors import Unavailable


class LocalBlobStore:
    name = "files"

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    async def connect(cls, settings: Settings) -> LocalBlobStore:
        store = cls(Path(settings.data_dir) / "blobs")
        await asyncio.to_thread(store.root.mkdir, parents=True, exist_ok=True)
        return store

    async def ping(self) -> None:
        def check() -> None:
            if not self.root.is_dir() or not os.access(self.root, os.W_OK):
                raise Unavailable(f"blob folder {self.root} is missing or not writable")

        await asyncio.to_thread(check)

    async def close(self) -> None:
        return None
