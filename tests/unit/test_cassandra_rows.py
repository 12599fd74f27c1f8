"""The Cassandra adapter's row factory (``session.named_rows``) gives rows as the driver's
default does, field names included, with one class per column list."""

from __future__ import annotations

import pytest
from cassandra.query import named_tuple_factory

from instastore.storage.cassandra.session import named_rows


@pytest.mark.parametrize(
    "columns",
    [
        ["photo_id", "record", "deleted_at"],
        ["[applied]", "name", "secret"],  # a lightweight transaction's answer
        ["t", "photo_id"],
        ["count(*)"],
        ["writetime(record)", "max(x)"],
        ["_private"],
        ["from", "class"],  # keywords
        ["a", "a"],  # twins
    ],
)
def test_rows_read_as_the_drivers_default_gives_them(columns):
    rows = [tuple(range(len(columns))), tuple(range(10, 10 + len(columns)))]
    ours, drivers = named_rows(columns, rows), named_tuple_factory(columns, rows)
    assert [r._fields for r in ours] == [r._fields for r in drivers]
    assert ours == drivers  # the same values, by position
    for got, want in zip(ours, drivers, strict=True):
        assert [getattr(got, f) for f in got._fields] == [getattr(want, f) for f in want._fields]
    assert type(ours[0]) is type(named_rows(list(columns), rows)[0])  # one class, made once
