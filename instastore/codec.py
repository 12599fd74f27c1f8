"""The Photo record's bytes: msgpack with a format version.

    [FORMAT_VERSION, {field: value, ...}]
A field added since version 1 is optional and absent when empty ("tc": a video's
transcode state), so a reader of version 1 that does not know it still reads the record.

Times are integer milliseconds since the Unix epoch. ``deleted_at`` is not part of the
record: it is its own cell, so deleting never rewrites the record. Decoding a record of
an unknown version (written by a newer instastore) fails with ``CorruptRecord``, never
with a half-read photo.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgpack

from instastore.errors import CorruptRecord
from instastore.model import Kind, Photo, Rendition, Transcode, VideoState, Visibility

FORMAT_VERSION = 1


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def encode_photo(photo: Photo) -> bytes:
    body: dict[str, object] = {
        "id": photo.id,
        "owner": photo.owner_id,
        "title": photo.title,
        "kind": photo.kind.value,
        "secret": photo.secret,
        "sha256": photo.sha256,
        "created": _ms(photo.created_at),
        "vis": photo.visibility.value,
        "r": [
            [r.name, r.locator, r.content_type, r.size, r.width, r.height] for r in photo.renditions
        ],
        "w": photo.width,
        "h": photo.height,
        "dur": photo.duration_s,
    }
    if photo.transcode is not None:  # absent when ready: older readers ignore the key
        body["tc"] = [photo.transcode.state.value, photo.transcode.reason]
    packed: bytes = msgpack.packb([FORMAT_VERSION, body], use_bin_type=True)  # msgpack is untyped
    return packed


def decode_photo(data: bytes, deleted_at: datetime | None = None) -> Photo:
    try:
        version, body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CorruptRecord(f"photo record does not decode: {exc}") from exc
    if version != FORMAT_VERSION:
        raise CorruptRecord(
            f"photo record has format version {version!r}; this instastore reads version "
            f"{FORMAT_VERSION}"
        )
    try:
        return Photo(
            id=body["id"],
            owner_id=body["owner"],
            title=body["title"],
            kind=Kind(body["kind"]),
            secret=body["secret"],
            sha256=body["sha256"],
            created_at=_at(body["created"]),
            visibility=Visibility(body["vis"]),
            renditions=tuple(Rendition(*r) for r in body["r"]),
            width=body["w"],
            height=body["h"],
            duration_s=body["dur"],
            deleted_at=deleted_at,
            transcode=Transcode(VideoState(body["tc"][0]), body["tc"][1]) if "tc" in body else None,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptRecord(
            f"photo record version {version} is missing or has a bad field: {exc}"
        ) from exc
