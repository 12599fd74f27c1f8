"""The shapes of blob keys: one agreement between the core, which chooses keys, and the
blob adapters, which may place keys by their prefix (HDFS keeps ``volumes/`` in an
erasure-coded folder of its own). Both import them from here, never from each other.

- ``<bucket>/<photo_id>.<rendition>.<ext>``: a rendition as an upload lands it (one blob,
  grouped by the id's time bucket, no folder per photo: on HDFS a folder is one more
  NameNode object, and one more left behind);
- ``volumes/<bucket>/<volume id>.vol``: a sealed volume of needles
  (``instastore.lifecycle.volumes``), written whole and never changed;
- ``packing/<volume id>.json``: the manifest of a volume being packed or compacted
  (``instastore.lifecycle.packing``), gone once its switches are done.

Landed keys never start with ``volumes/`` or ``packing/`` (a bucket is a number), and no
key starts with ``n:``, the needle locator's prefix. This module only names keys; it
never reads or writes a blob.
"""

from __future__ import annotations

from instastore import ids

VOLUME_PREFIX = "volumes/"
VOLUME_SUFFIX = ".vol"
MANIFEST_PREFIX = "packing/"
MANIFEST_SUFFIX = ".json"


def blob_key(photo_id: int, name: str, extension: str) -> str:
    """Where a rendition's bytes land: grouped by id time bucket, with no folder per
    photo (on HDFS a folder is one more NameNode object, and one more left behind)."""
    return f"{ids.bucket_of(photo_id)}/{photo_id}.{name}.{extension}"


def volume_key(volume_id: int) -> str:
    """The blob key of a volume: grouped by id time bucket (about 6 days), so that no
    HDFS folder comes near its item limit (``dfs.namenode.fs-limits.max-directory-items``,
    about a million)."""
    return f"{VOLUME_PREFIX}{ids.bucket_of(volume_id)}/{volume_id}{VOLUME_SUFFIX}"


def manifest_key(volume_id: int) -> str:
    """The blob key of the manifest of the volume being packed or compacted."""
    return f"{MANIFEST_PREFIX}{volume_id}{MANIFEST_SUFFIX}"
