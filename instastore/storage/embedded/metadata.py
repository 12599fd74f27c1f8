"""SQLite metadata store: one connection, owned by one worker thread.

Every statement runs on that thread (Datasette's ``execute_fn`` pattern), so the event
loop never waits on SQLite and the connection is never shared between threads. WAL mode
and ``synchronous=FULL``: a committed write survives a crash of the process or machine.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from instastore.config import Settings
from instastore.errors import StorageError, Unavailable

T = TypeVar("T")
DB_FILE = "metadata.sqlite3"


class SqliteMetadataStore:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def connect(cls, settings: Settings) -> SqliteMetadataStore:
        store = cls(Path(settings.data_dir) / DB_FILE)
        await store._run(store._open)
        return store

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._conn = conn

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"SQLite at {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite at {self.path}: {exc}") from exc
        except RuntimeError as exc:  # executor shut down
            raise Unavailable(f"SQLite store at {self.path} is closed") from exc

    async def ping(self) -> None:
        def check() -> None:
            if self._conn is None:
                raise sqlite3.OperationalError("not open")
            self._conn.execute("SELECT 1").fetchone()

        await self._run(check)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)
