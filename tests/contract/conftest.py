"""The contract suite's fixtures: every test here runs once per adapter.

``stores`` is parametrized (``adapter_settings`` in tests/conftest.py) over "embedded"
(SQLite + local files in a temporary folder) and "cluster" (Cassandra + HDFS of the
running local cluster, in a keyspace and an HDFS folder of this test session, dropped at
the end)."""

from __future__ import annotations

import pytest

from instastore.storage import open_stores


@pytest.fixture
async def stores(adapter_settings):
    stores = await open_stores(adapter_settings)
    yield stores
    await stores.close()
