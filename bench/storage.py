"""``python -m bench.storage``: NameNode objects per stored photo before and after
``instastore pack``, and the packer's throughput (issue 12, "Measured, in bench/").

On a store of its own (name a keyspace and an HDFS root no one else uses; the keyspace
migrated, the root empty), it:

1. uploads ``--photos`` photos with distinct bytes (each a small generated JPEG of random
   noise over a random colour block, so no two share bytes), ``--concurrency`` at a time,
   through the upload service's own code path (``instastore.uploads.receive`` to a
   temporary file, then ``Uploads.create``: the media pipeline, one landed blob per
   rendition, the photo record): no HTTP, nothing else skipped;
2. counts the NameNode's objects under the HDFS root: files and directories from
   WebHDFS ``GETCONTENTSUMMARY`` of the root, blocks from the NameNode's ``/fsck`` of the
   root (its "Total blocks (validated)", plus "Total block groups" for erasure-coded
   volumes). ``/jmx`` ``BlocksTotal`` is not used: it counts the whole shared cluster;
3. runs the packer (``instastore.lifecycle.packing.pack`` with ``--min-age 0``, the default
   ``volume_target_bytes`` and the default landed-blob grace) and times it;
4. counts again, and projects both counts to ``PROJECTED_PHOTOS`` photos.

With ``--land-dir DIR`` uploads land on the local disk under DIR instead of in HDFS: the
same upload code and the same packer, over a blob store that keeps every key but
``volumes/`` in local files (``LandedLocally``), so HDFS only ever sees what packing
leaves, the volumes. Landing in HDFS costs a NameNode create and a DataNode pipeline per
rendition (7-10 photos/s on these 2 cores, bench/results/README.md); what packing leaves
does not depend on where the blobs landed. The count before packing is then of the local
files. The upload path's own work still bounds the rate (23 photos/s in a trial on a
loaded machine).

On the embedded adapter (no NameNode) it counts the local files and folders under
``<data_dir>/blobs`` instead, blocks not applicable: the same code path, for the tests.

Writes ``bench/results/<--name>.json`` and ``.md`` with the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import os
import random
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from bench import report
from instastore import config
from instastore.config import Settings
from instastore.ids import IdGenerator
from instastore.lifecycle import packing
from instastore.model import User, Visibility
from instastore.services import build_services
from instastore.storage import open_stores, scratch
from instastore.storage.embedded import LocalBlobStore
from instastore.storage.keys import VOLUME_PREFIX
from instastore.storage.ports import BlobEntry, BlobStore, Stores
from instastore.uploads import receive

RESULTS = Path(__file__).parent / "results"
PROJECTED_PHOTOS = 7_300_000_000  # issue 12: ten years at 2 million photos a day
# Bytes of NameNode heap per file, directory or block: the rule of thumb of Cloudera's
# "The Small Files Problem" (2009) and of "Hadoop: The Definitive Guide" (ch. 3), which
# issue 12's "7 objects, about 1 KB of heap" also uses.
HEAP_BYTES_PER_OBJECT = 150
HDFS_BLOCK_BYTES = 128 * 2**20  # Hadoop's default dfs.blocksize (the shared cluster's too)
TARGET_OBJECTS_PER_PHOTO = 0.01  # issue 12, after packing
TARGET_RAW_PER_LOGICAL = 1.6  # issue 12: raw bytes on 3 DataNodes per byte, packed data
IMAGE_SIDE = 64  # pixels: small JPEGs (~3-5 KB with renditions), so 100,000 fit the disks
BLOCK_LINE = re.compile(r"Total block(?:s| groups) \(validated\):\s+(\d+)")


def distinct_jpeg(index: int) -> bytes:
    """A small JPEG whose bytes no other index gives: random noise (seeded by the index)
    over a random colour block."""
    rng = random.Random(index)
    image = Image.new("RGB", (IMAGE_SIDE, IMAGE_SIDE), tuple(rng.randrange(256) for _ in "rgb"))
    noise = Image.frombytes(
        "RGB", (IMAGE_SIDE, IMAGE_SIDE // 2), rng.randbytes(IMAGE_SIDE**2 * 3 // 2)
    )
    image.paste(noise, (0, IMAGE_SIDE // 4))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


class LandedLocally:
    """The bulk path's blob store: volumes (and only volumes) in the store the settings
    name, every other key (landed blobs, packing manifests) in local files."""

    name = "landed-locally"

    def __init__(self, volumes: BlobStore, landed: BlobStore) -> None:
        self.volumes = volumes
        self.landed = landed

    def _of(self, key: str) -> BlobStore:
        return self.volumes if key.startswith(VOLUME_PREFIX) else self.landed

    async def ping(self) -> None:
        await self.volumes.ping()
        await self.landed.ping()

    async def close(self) -> None:
        await self.volumes.close()
        await self.landed.close()

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        return await self._of(key).put(key, chunks)

    def open(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        return self._of(key).open(key, offset, length)

    async def size(self, key: str) -> int:
        return await self._of(key).size(key)

    async def delete(self, key: str) -> bool:
        return await self._of(key).delete(key)

    async def entries(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        if not prefix.startswith(VOLUME_PREFIX):
            async for entry in self.landed.entries(prefix):
                yield entry
        if prefix.startswith(VOLUME_PREFIX) or VOLUME_PREFIX.startswith(prefix):
            async for entry in self.volumes.entries(prefix):
                yield entry

    async def remove_empty_folders(self) -> int:
        return await self.volumes.remove_empty_folders() + await self.landed.remove_empty_folders()

    async def remove_abandoned_parts(
        self, now: datetime, grace: timedelta = scratch.SCRATCH_GRACE
    ) -> int:
        parts = await self.volumes.remove_abandoned_parts(now, grace)
        return parts + await self.landed.remove_abandoned_parts(now, grace)


async def open_bench_stores(settings: Settings, land_dir: Path | None) -> Stores:
    """The stores the settings name; with ``land_dir``, landing in local files there."""
    stores = await open_stores(settings)
    if land_dir is None:
        return stores
    local = dataclasses.replace(settings, data_dir=land_dir)
    landed = await LocalBlobStore.connect(local)
    return dataclasses.replace(stores, blobs=LandedLocally(stores.blobs, landed))


def say(line: str) -> None:
    """Progress, at once even when the output is a file."""
    print(line, flush=True)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def seed_photos(
    settings: Settings,
    count: int,
    concurrency: int,
    progress: Callable[[str], None] = say,
    land_dir: Path | None = None,
) -> dict[str, Any]:
    """Upload ``count`` distinct photos through the upload service (no HTTP); how long."""
    stores = await open_bench_stores(settings, land_dir)
    try:
        services = build_services(stores, settings)
        ids = IdGenerator(settings.fixed_worker_id or 0)
        user = User(ids.next_id(), f"storbench{ids.next_id()}", "-", "", False, datetime.now(UTC))
        await stores.accounts.create_user(user)
        gate = asyncio.Semaphore(concurrency)
        done = 0

        async def upload(index: int) -> None:
            nonlocal done
            async with gate:
                received = await receive(
                    _chunks(distinct_jpeg(index)),
                    settings.max_upload_bytes,
                    services.uploads.tmp_dir,
                )
                try:
                    await services.uploads.create(
                        user, received, f"photo {index}", Visibility.PUBLIC, None
                    )
                finally:
                    await asyncio.to_thread(received.discard)
            done += 1
            if done % 1000 == 0:
                rate = done / (time.monotonic() - started)
                progress(f"uploaded {done}/{count} ({rate:.1f} photos/s)")

        started = time.monotonic()
        await asyncio.gather(*(upload(i) for i in range(count)))
        seconds = time.monotonic() - started
    finally:
        await stores.close()
    return {
        "photos": count,
        "owner_id": user.id,
        "seconds": round(seconds, 1),
        "per_s": round(count / seconds, 1),
    }


async def namenode_objects(settings: Settings) -> dict[str, Any]:
    """Files, directories and blocks under the store's root, as the NameNode counts them
    (the embedded adapter: local files and folders under ``<data_dir>/blobs``)."""
    if not settings.uses_cluster:
        return await asyncio.to_thread(_local_objects, Path(settings.data_dir) / "blobs")
    base = settings.webhdfs_url.rstrip("/")
    root = settings.hdfs_root.rstrip("/") or "/"
    user = {"user.name": settings.hdfs_user}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        async with http.get(
            f"{base}/webhdfs/v1{root}", params={"op": "GETCONTENTSUMMARY", **user}
        ) as resp:
            if resp.status == 404:  # no root yet: nothing stored
                return _counted(0, 0, 0, 0, f"NameNode: {root} does not exist")
            resp.raise_for_status()
            summary = (await resp.json())["ContentSummary"]
        async with http.get(
            f"{base}/fsck", params={"ugi": settings.hdfs_user, "path": root}
        ) as resp:
            resp.raise_for_status()
            fsck = await resp.text()
    blocks = sum(int(n) for n in BLOCK_LINE.findall(fsck))
    return _counted(
        int(summary["fileCount"]),
        int(summary["directoryCount"]),
        blocks,
        int(summary["length"]),
        f"NameNode: GETCONTENTSUMMARY {root} (files, directories, bytes), /fsck {root} (blocks)",
        raw=int(summary["spaceConsumed"]),
    )


def _counted(
    files: int,
    directories: int,
    blocks: int | None,
    size: int,
    source: str,
    raw: int | None = None,
) -> dict[str, Any]:
    return {
        "files": files,
        "directories": directories,
        "blocks": blocks,
        "total": files + directories + (blocks or 0),
        "logical_bytes": size,
        # bytes on the DataNodes' disks: replicas, or data and parity blocks
        "raw_bytes": raw,
        "raw_per_logical": round(raw / size, 3) if raw is not None and size else None,
        "source": source,
    }


def _local_objects(root: Path) -> dict[str, Any]:
    files = directories = size = 0
    for folder, _, names in os.walk(root):
        directories += 1
        files += len(names)
        size += sum((Path(folder) / n).stat().st_size for n in names)
    return _counted(
        files, directories, None, size, f"local files and folders under {root} (no NameNode)"
    )


async def run_pack(
    settings: Settings,
    landed_grace_s: float = packing.LANDED_GRACE_S,
    land_dir: Path | None = None,
    progress: Callable[[str], None] = say,
) -> dict[str, Any]:
    """``instastore pack --min-age 0``: the packer's report and its photos per second."""
    stores = await open_bench_stores(settings, land_dir)
    try:
        started = time.monotonic()
        result = await packing.pack(
            stores.photos,
            stores.blobs,
            settings,
            timedelta(0),
            landed_grace_s=landed_grace_s,
            progress=progress,
        )
        seconds = time.monotonic() - started
    finally:
        await stores.close()
    working = seconds - min(result.volumes, 1) * landed_grace_s
    return asdict(result) | {
        "seconds": round(seconds, 1),
        "photos_per_s": round(result.photos / seconds, 1),
        "landed_grace_s_per_run": landed_grace_s,
        # The grace is a wait, not work: without it, what the packer's work takes.
        "photos_per_s_without_grace": round(result.photos / working, 1) if working > 0 else None,
    }


def per_photo(objects: dict[str, Any], photos: int) -> dict[str, Any]:
    """Objects per photo, and what that is at ``PROJECTED_PHOTOS``."""
    ratio = objects["total"] / photos
    projected = ratio * PROJECTED_PHOTOS
    return {
        "objects_per_photo": round(ratio, 5),
        "projected_objects": round(projected),
        "projected_heap_gib": round(projected * HEAP_BYTES_PER_OBJECT / 2**30, 1),
    }


def full_volumes(bytes_per_photo: float, volume_bytes: int) -> dict[str, Any]:
    """Computed, not measured: objects per photo once every volume is full (a run this
    small fills one volume partly, and its folders weigh more than they would at scale):
    each replicated volume is one file and one block per ``HDFS_BLOCK_BYTES``."""
    objects_per_volume = 1 + -(-volume_bytes // HDFS_BLOCK_BYTES)
    photos_per_volume = volume_bytes / bytes_per_photo
    ratio = objects_per_volume / photos_per_volume
    return {
        "bytes_per_photo": round(bytes_per_photo),
        "objects_per_volume": objects_per_volume,
        "photos_per_volume": round(photos_per_volume),
        "objects_per_photo": round(ratio, 6),
        "projected_objects": round(ratio * PROJECTED_PHOTOS),
        "projected_heap_gib": round(ratio * PROJECTED_PHOTOS * HEAP_BYTES_PER_OBJECT / 2**30, 2),
    }


async def measure(
    settings: Settings,
    photos: int,
    concurrency: int,
    progress: Callable[[str], None] = say,
    landed_grace_s: float = packing.LANDED_GRACE_S,
    land_dir: Path | None = None,
) -> dict[str, Any]:
    """Seed, count, pack, count: the whole measurement on an empty store."""
    empty = await namenode_objects(settings)
    if empty["files"]:
        raise SystemExit(f"the store is not empty ({empty['files']} files): name a fresh root")
    where = f"landing in {land_dir}" if land_dir else "landing in the store"
    progress(f"uploading {photos} distinct photos, {concurrency} at a time, {where} ...")
    seeded = await seed_photos(settings, photos, concurrency, progress, land_dir)
    before = await namenode_objects(settings)
    landed = None
    if land_dir is not None:
        landed = await asyncio.to_thread(_local_objects, land_dir / "blobs")
    progress(f"before packing: {before}" + (f"; landed locally: {landed}" if landed else ""))
    packed = await run_pack(settings, landed_grace_s, land_dir, progress)
    after = await namenode_objects(settings)
    progress(f"after packing: {after}")
    after_ratio = per_photo(after, photos)
    stored_bytes = (landed or before)["logical_bytes"]
    return {
        "machine": report.machine(),
        "settings": {
            "photos": photos,
            "concurrency": concurrency,
            "adapter": "cluster" if settings.uses_cluster else "embedded",
            "hdfs_root": settings.hdfs_root if settings.uses_cluster else None,
            "volume_target_bytes": settings.volume_target_bytes,
            "image_side_px": IMAGE_SIDE,
            "projected_photos": PROJECTED_PHOTOS,
            "heap_bytes_per_object": HEAP_BYTES_PER_OBJECT,
            "landed": "in local files (--land-dir): HDFS sees only the volumes"
            if land_dir
            else "in the store, as uploads land",
        },
        "results": {
            "upload": seeded,
            "before": before | per_photo(before, photos),
            "landed_locally": landed,
            "pack": packed,
            "after": after | after_ratio,
            "full_volumes_computed": full_volumes(
                stored_bytes / photos, settings.volume_target_bytes
            ),
        },
        "targets": {
            "objects_per_photo_after_packing": {
                "measured": after_ratio["objects_per_photo"],
                "target": f"<= {TARGET_OBJECTS_PER_PHOTO}",
                "met": after_ratio["objects_per_photo"] <= TARGET_OBJECTS_PER_PHOTO,
            },
            # meaningful on 3 DataNodes or more (an erasure-coded volume folder)
            "raw_per_logical_after_packing": {
                "measured": after["raw_per_logical"],
                "before_packing": before["raw_per_logical"],
                "target": f"<= {TARGET_RAW_PER_LOGICAL}",
                "met": after["raw_per_logical"] is not None
                and after["raw_per_logical"] <= TARGET_RAW_PER_LOGICAL,
            },
        },
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__)
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16, help="uploads in flight")
    parser.add_argument("--name", default="storage", help="results file name (no suffix)")
    parser.add_argument(
        "--land-dir",
        type=Path,
        default=None,
        help="land uploads in local files under this folder (the bulk path; see above)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    config.add_arguments(parser)
    return parser.parse_args()


def main() -> None:
    args = parse()
    settings = config.settings_from_args(args)
    body = asyncio.run(measure(settings, args.photos, args.concurrency, land_dir=args.land_dir))
    report.write(args.out, args.name, body)
    print(json.dumps(body["results"] | {"targets": body["targets"]}, indent=2))


if __name__ == "__main__":
    main()
