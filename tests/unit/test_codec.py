"""The Photo record's msgpack encoding: round trip, versioned, strict."""

from __future__ import annotations

from datetime import UTC, datetime

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instastore import codec, ids
from instastore.errors import CorruptRecord
from instastore.model import Kind, Photo, Rendition, Visibility

times = st.integers(min_value=ids.EPOCH_MS, max_value=ids.EPOCH_MS + 2**40).map(
    lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC)
)
small = st.none() | st.integers(min_value=0, max_value=100_000)
renditions = st.builds(
    Rendition,
    name=st.sampled_from(["original", "large", "thumb", "poster", "video"]),
    locator=st.text(min_size=1, max_size=80),
    content_type=st.sampled_from(["image/jpeg", "image/png", "video/mp4"]),
    size=st.integers(min_value=0, max_value=2**40),
    width=small,
    height=small,
)
photos = st.builds(
    Photo,
    id=st.integers(min_value=1, max_value=ids.MAX_ID),
    owner_id=st.integers(min_value=1, max_value=ids.MAX_ID),
    title=st.text(max_size=300),
    kind=st.sampled_from(Kind),
    secret=st.text(min_size=1, max_size=24),
    sha256=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    created_at=times,
    visibility=st.sampled_from(Visibility),
    renditions=st.lists(renditions, max_size=5).map(tuple),
    width=small,
    height=small,
    duration_s=st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
    deleted_at=st.none(),
)


@given(photos)
def test_round_trip(photo):
    assert codec.decode_photo(codec.encode_photo(photo)) == photo


@given(photos, times)
def test_deleted_at_is_not_in_the_record(photo, deleted_at):
    data = codec.encode_photo(photo.with_deleted_at(deleted_at))
    assert data == codec.encode_photo(photo)
    assert codec.decode_photo(data, deleted_at).deleted_at == deleted_at


def test_an_unknown_version_is_a_clear_error():
    data = msgpack.packb([99, {"id": 1}])
    with pytest.raises(CorruptRecord, match="format version 99; this instastore reads version 1"):
        codec.decode_photo(data)


@pytest.mark.parametrize("data", [b"", b"\xc1", msgpack.packb([1, {"id": 1}]), msgpack.packb("x")])
def test_garbage_is_a_corrupt_record(data):
    with pytest.raises(CorruptRecord):
        codec.decode_photo(data)
