"""``python -m bench seed``: a realistic dataset, written through the same storage ports
the service uses (a bulk path: the same records the API would write, faster).

- users: ``--posters`` accounts that post, and ``--readers`` accounts that read; the
  first reader (``reader0``) follows every poster, the others follow a heavy-tailed
  (Zipf) sample, so a few posters have many followers and most have few;
- a pool of ``--pool`` generated JPEGs of 100 KB to 3 MB (noise, gradients and shapes, so
  they compress like photos), processed by the real media pipeline (renditions, stripped
  metadata) and stored once each; ``--photos`` photo records, spread over the last
  ``--days`` days and over the posters, point at the pool's blobs (many records, few
  bytes: this measures the metadata paths, not the disk);
- titles from a word list, so search has common and rare words.

Resumable: progress is checkpointed in ``bench/.state/``, under the store's full
identity (the absolute data folder; or contact points, keyspace, WebHDFS URL and HDFS
root), and checked against the store before it is trusted (its users, pool blobs and
first photo must be there); run it again to continue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from PIL import Image, ImageDraw
from tqdm import tqdm

from instastore import ids as idlib
from instastore import media, search
from instastore.config import Settings
from instastore.errors import Conflict, NotFound
from instastore.model import Kind, Photo, Rendition, User, Visibility
from instastore.storage import open_stores

PASSWORD = "bench password"
WORDS = [
    "sunset",
    "beach",
    "city",
    "night",
    "street",
    "portrait",
    "coffee",
    "mountain",
    "lake",
    "forest",
    "snow",
    "river",
    "bridge",
    "market",
    "garden",
    "dog",
    "cat",
    "bird",
    "flower",
    "food",
    "friends",
    "party",
    "concert",
    "train",
    "station",
    "harbour",
    "boat",
    "sky",
    "cloud",
    "rain",
    "autumn",
    "spring",
    "summer",
    "winter",
    "morning",
    "evening",
    "light",
    "shadow",
    "red",
    "blue",
    "green",
    "golden",
    "old",
    "new",
    "crème",
    "brûlée",
    "café",
    "naïve",
    "façade",
]
STATE_DIR = Path(__file__).parent / ".state"
IN_FLIGHT = 32  # concurrent record writes


def make_jpeg(rng: random.Random, target_bytes: int) -> bytes:
    """A JPEG of roughly ``target_bytes`` with photo-like content."""
    side = int((target_bytes / 0.35) ** 0.5)  # noisy JPEG at q90 is ~0.35 bytes per pixel here
    w, h = max(320, int(side * 1.33)), max(240, side)
    base = Image.effect_noise((w, h), rng.uniform(20, 90)).convert("RGB")
    overlay = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    img = Image.blend(base, overlay, rng.uniform(0.3, 0.7))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(10, max(11, w // 6))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def pool_images(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    sizes = [int(100_000 * (30 ** (i / max(1, count - 1)))) for i in range(count)]  # 100 KB .. 3 MB
    rng.shuffle(sizes)
    return [make_jpeg(rng, s) for s in sizes]


def zipf_sample(rng: random.Random, population: list, k: int, s: float = 1.1) -> list:
    weights = [1 / (i + 1) ** s for i in range(len(population))]
    chosen = set()
    while len(chosen) < min(k, len(population)):
        chosen.add(rng.choices(range(len(population)), weights)[0])
    return [population[i] for i in chosen]


def store_identity(settings: Settings) -> str:
    """What tells one store from every other: two stores never share a checkpoint."""
    if settings.uses_cluster:
        hosts = ",".join(sorted(settings.cassandra_contact_points))
        return (
            f"cassandra://{hosts}:{settings.cassandra_port}/{settings.cassandra_keyspace} "
            f"webhdfs:{settings.webhdfs_url.rstrip('/')}{settings.hdfs_root}"
        )
    return f"embedded:{Path(settings.data_dir).resolve()}"


class Checkpoint:
    def __init__(self, identity: str) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self.identity = identity
        self.path = STATE_DIR / f"seed-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.json"
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.data = data if data.get("store") == identity else {"store": identity}

    async def check(self, stores) -> None:
        """Start over if the store lacks what the checkpoint says was written (the store
        was wiped or replaced since): never point new records at blobs that are not there."""
        if await self._matches(stores):
            return
        print(
            f"seed: the checkpoint {self.path} does not match the store; starting over",
            file=sys.stderr,
        )
        self.data = {"store": self.identity}

    async def _matches(self, stores) -> bool:
        for username, user_id in list(self.data.get("users", {}).items())[:1]:
            user = await stores.accounts.get_user_by_name(username)
            if user is None or user.id != user_id:
                return False
        for record in self.data.get("pool", []):
            for rendition in record["renditions"]:
                try:
                    await stores.blobs.size(rendition[1])
                except NotFound:
                    return False
        first = self.data.get("first_photo")
        return first is None or await stores.photos.get_photo(first) is not None

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)


async def seed(
    settings: Settings,
    posters: int,
    readers: int,
    photos: int,
    pool: int,
    days: int,
    follows_per_reader: int,
) -> dict:
    state = Checkpoint(store_identity(settings))
    stores = await open_stores(settings)
    rng = random.Random(42)
    gen = idlib.IdGenerator(8000)
    try:
        await state.check(stores)
        # Users
        hashed = await asyncio.to_thread(PasswordHasher().hash, PASSWORD)  # argon2: ~1 s of CPU
        users = state.data.setdefault("users", {})
        wanted = [f"poster{i}" for i in range(posters)] + [f"reader{i}" for i in range(readers)]
        for username in tqdm([u for u in wanted if u not in users], desc="users", unit="user"):
            existing = await stores.accounts.get_user_by_name(username)
            if existing is None:
                existing = User(
                    gen.next_id(), username, hashed, username.title(), False, datetime.now(UTC)
                )
                await stores.accounts.create_user(existing)
            users[username] = existing.id
        state.save()

        # Follow graph
        if not state.data.get("follows_done"):
            poster_ids = [users[f"poster{i}"] for i in range(posters)]
            pairs = [(users["reader0"], p) for p in poster_ids]
            for i in range(1, readers):
                pairs += [
                    (users[f"reader{i}"], p)
                    for p in zipf_sample(rng, poster_ids, follows_per_reader)
                ]
            sem = asyncio.Semaphore(IN_FLIGHT)

            async def follow(a, b):
                async with sem:
                    await stores.graph.follow(a, b, datetime.now(UTC))

            for start in tqdm(range(0, len(pairs), 500), desc="follows", unit="x500"):
                await asyncio.gather(*(follow(a, b) for a, b in pairs[start : start + 500]))
            state.data["follows_done"] = True
            state.save()

        # Media pool: real images through the real pipeline, stored once each
        pool_records = state.data.setdefault("pool", [])
        if len(pool_records) < pool:
            images = await asyncio.to_thread(pool_images, pool)
            for i in tqdm(range(len(pool_records), pool), desc="media pool", unit="img"):
                data = images[i]
                tmp = STATE_DIR / "pool.jpg"
                await asyncio.to_thread(tmp.write_bytes, data)  # up to 3 MB: off the loop
                processed = await asyncio.to_thread(
                    media.process, tmp, media.TYPES["jpeg"], settings.max_image_pixels
                )
                key_base = f"bench-pool/{i}"
                renditions = []
                for r_name, payload, ctype, w, h in [
                    ("original", data, "image/jpeg", processed.width, processed.height)
                ] + [
                    (r.name, r.data, r.content_type, r.width, r.height)
                    for r in processed.renditions
                ]:
                    key = f"{key_base}/{r_name}.jpg"
                    with contextlib.suppress(Conflict):  # a resumed run: the blob is there
                        await stores.blobs.put(key, _one(payload))
                    renditions.append([r_name, key, ctype, len(payload), w, h])
                pool_records.append(
                    {"renditions": renditions, "width": processed.width, "height": processed.height}
                )
                state.save()

        # Photo records
        done = state.data.get("photos_done", 0)
        poster_ids = [users[f"poster{i}"] for i in range(posters)]
        now_ms = idlib.now_ms()
        span_ms = days * 86_400_000
        sem = asyncio.Semaphore(IN_FLIGHT)

        async def save(k: int) -> int:
            r = random.Random(k)
            at = now_ms - r.randrange(span_ms)
            pid = idlib.make_id(at, 8100 + (k % 64), (k // 64) % 1024)
            item = pool_records[r.randrange(len(pool_records))]
            title = " ".join(r.choice(WORDS) for _ in range(r.randint(2, 6)))
            photo = Photo(
                id=pid,
                owner_id=poster_ids[r.randrange(len(poster_ids))],
                title=title,
                kind=Kind.PHOTO,
                secret=idlib.new_media_secret(),
                sha256="00" * 32,
                created_at=idlib.created_at(pid),
                visibility=Visibility.PUBLIC,
                renditions=tuple(Rendition(*x) for x in item["renditions"]),
                width=item["width"],
                height=item["height"],
            )
            async with sem:
                await stores.photos.save_photo(photo, search.terms(title))
            return pid

        with tqdm(total=photos, initial=done, desc="photos", unit="photo") as bar:
            while done < photos:
                batch = range(done, min(photos, done + 1000))
                saved = await asyncio.gather(*(save(k) for k in batch))
                state.data.setdefault("first_photo", saved[0])
                done = batch[-1] + 1
                state.data["photos_done"] = done
                state.save()
                bar.update(len(batch))
        return {
            "users": len(users),
            "photos": done,
            "pool": len(pool_records),
            "state": str(state.path),
        }
    finally:
        await stores.close()


async def _one(data: bytes):
    yield data
