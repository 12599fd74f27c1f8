"""The embedded store's schema, as ``serve --workers N`` meets it: N processes open one
fresh database at the same moment, and every one of them must come up on the whole schema
with each migration applied once (a worker that read "not applied" before another applied
it used to fail with "table users already exists" and take the server down)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from instastore.schema import migrations

from instastore.config import Settings
from instastore.storage.embedded.metadata import DB_FILE, SqliteMetadataStore

OPENERS = 8


async def test_stores_opening_one_fresh_database_at_once_all_come_up(tmp_path: Path) -> None:
    for attempt in range(5):
        data_dir = tmp_path / f"data-{attempt}"
        settings = Settings(data_dir=data_dir)
        stores = await asyncio.gather(
            *(SqliteMetadataStore.connect(settings) for _ in range(OPENERS)),
            return_exceptions=True,
        )
        failed = [s for s in stores if isinstance(s, BaseException)]
        for store in stores:
            if isinstance(store, SqliteMetadataStore):
                await store.close()
        assert not failed, f"attempt {attempt}: {failed[0]!r}"

        with contextlib.closing(sqlite3.connect(data_dir / DB_FILE)) as db:
            versions = [v for (v,) in db.execute("SELECT version FROM schema_migrations")]
        assert sorted(versions) == [m.version for m in migrations("sqlite")]
