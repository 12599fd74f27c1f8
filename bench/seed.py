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
- titles from a word list, so search has common and rare words;
- ``--wide N``: a reader ``wide0`` who follows N accounts (Instagram's cap is 7,500): the
  posters and as many ``quiet<i>`` accounts as it takes, each with ``--quiet-photos``
  photos over the same days;
- ``--fan-posters 10,1000,100000``: an account ``fan<N>`` per size, followed by N
  followers (synthetic follower ids: rows in the follow graph, no accounts behind them,
  which is all a fan-out reads), for the upload-with-fan-out figures;
- the timeline inboxes: photo records written here queue their fan-out, as an upload's
  do, and the seed then runs the real ``Fanout.fan_out`` of every account that posted
  (its followers' inbox rows for the last ``inbox_days``, its fan-out mark, the queue
  emptied), and takes the seeded follows' inbox backfills off the record: the fan-out
  that ran after every follow copied what a backfill would.

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
from instastore.fanout import Fanout
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
FOLLOWS_IN_FLIGHT = 64  # concurrent follows of the fan posters' synthetic followers
FANOUTS_IN_FLIGHT = 8  # owners fanned out at once (each writes 64 inbox rows at a time)
WIDE_READER = "wide0"
QUIET_WORKERS = 8176  # id worker numbers of the quiet accounts' photos (8176..8183)
FOLLOWER_WORKER = 8191  # id worker number of the fan posters' synthetic followers


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


def synthetic_follower(k: int) -> int:
    """The id of the fan posters' k-th follower: a follow-graph row only, no account."""
    return idlib.make_id(idlib.EPOCH_MS + 1 + k // 1024, FOLLOWER_WORKER, k % 1024)


async def seed(
    settings: Settings,
    posters: int,
    readers: int,
    photos: int,
    pool: int,
    days: int,
    follows_per_reader: int,
    wide: int = 0,
    quiet_photos: int = 10,
    fan_posters: tuple[int, ...] = (),
    fanout: bool = True,
) -> dict:
    state = Checkpoint(store_identity(settings))
    stores = await open_stores(settings)
    rng = random.Random(42)
    gen = idlib.IdGenerator(8000)
    quiet = max(0, wide - posters)
    try:
        await state.check(stores)
        # Users
        hashed = await asyncio.to_thread(PasswordHasher().hash, PASSWORD)  # argon2: ~1 s of CPU
        users = state.data.setdefault("users", {})
        wanted = [f"poster{i}" for i in range(posters)] + [f"reader{i}" for i in range(readers)]
        wanted += [f"quiet{i}" for i in range(quiet)] + ([WIDE_READER] if wide else [])
        wanted += [f"fan{n}" for n in fan_posters]
        user_gate = asyncio.Semaphore(IN_FLIGHT)

        async def account(username: str) -> None:
            async with user_gate:
                existing = await stores.accounts.get_user_by_name(username)
                if existing is None:
                    existing = User(
                        gen.next_id(), username, hashed, username.title(), False, datetime.now(UTC)
                    )
                    await stores.accounts.create_user(existing)
            users[username] = existing.id

        todo = [u for u in wanted if u not in users]
        for start in tqdm(range(0, len(todo), 500), desc="users", unit="x500"):
            await asyncio.gather(*(account(u) for u in todo[start : start + 500]))
            state.save()

        async def follow_all(pairs: list[tuple[int, int]], desc: str, flight: int) -> None:
            sem = asyncio.Semaphore(flight)

            async def follow(a: int, b: int) -> None:
                async with sem:
                    await stores.graph.follow(a, b, datetime.now(UTC))

            for start in tqdm(range(0, len(pairs), 500), desc=desc, unit="x500"):
                await asyncio.gather(*(follow(a, b) for a, b in pairs[start : start + 500]))

        # Follow graph
        if not state.data.get("follows_done"):
            poster_ids = [users[f"poster{i}"] for i in range(posters)]
            pairs = [(users["reader0"], p) for p in poster_ids]
            for i in range(1, readers):
                pairs += [
                    (users[f"reader{i}"], p)
                    for p in zipf_sample(rng, poster_ids, follows_per_reader)
                ]
            await follow_all(pairs, "follows", IN_FLIGHT)
            state.data["follows_done"] = True
            state.save()
        if wide and not state.data.get("wide_follows_done"):
            followees = [users[f"poster{i}"] for i in range(min(posters, wide))]
            followees += [users[f"quiet{i}"] for i in range(quiet)]
            wide_id = users[WIDE_READER]
            await follow_all([(wide_id, f) for f in followees], "wide follows", IN_FLIGHT)
            state.data["wide_follows_done"] = True
            state.save()
        for n in fan_posters:
            if state.data.get(f"fan{n}_follows_done"):
                continue
            await bulk_followers(stores, users[f"fan{n}"], n)
            state.data[f"fan{n}_follows_done"] = True
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
        poster_ids = [users[f"poster{i}"] for i in range(posters)]
        quiet_ids = [users[f"quiet{i}"] for i in range(quiet)]
        now_ms = idlib.now_ms()
        span_ms = days * 86_400_000
        sem = asyncio.Semaphore(IN_FLIGHT)

        def posters_photo(k: int) -> tuple[random.Random, int, int]:
            r = random.Random(k)
            at = now_ms - r.randrange(span_ms)
            pid = idlib.make_id(at, 8100 + (k % 64), (k // 64) % 1024)
            return r, pid, poster_ids[r.randrange(len(poster_ids))]

        def quiet_photo(k: int) -> tuple[random.Random, int, int]:
            # Each quiet account gets the same number, at random times over the days.
            r = random.Random(-1 - k)
            at = now_ms - r.randrange(span_ms)
            pid = idlib.make_id(at, QUIET_WORKERS + (k % 8), (k // 8) % 1024)
            return r, pid, quiet_ids[k % len(quiet_ids)]

        async def save(k: int, make) -> int:
            r, pid, owner = make(k)
            item = pool_records[r.randrange(len(pool_records))]
            title = " ".join(r.choice(WORDS) for _ in range(r.randint(2, 6)))
            photo = Photo(
                id=pid,
                owner_id=owner,
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

        for key, total, make in (
            ("photos_done", photos, posters_photo),
            ("quiet_photos_done", quiet * quiet_photos, quiet_photo),
        ):
            done = state.data.get(key, 0)
            with tqdm(total=total, initial=done, desc=key[:-5], unit="photo") as bar:
                while done < total:
                    batch = range(done, min(total, done + 1000))
                    saved = await asyncio.gather(*(save(k, make) for k in batch))
                    state.data.setdefault("first_photo", saved[0])
                    done = batch[-1] + 1
                    state.data[key] = done
                    state.save()
                    bar.update(len(batch))

        # Timeline inboxes: the real fan-out of every account that posted, then the
        # seeded follows' backfills (the fan-outs, run after every follow, copied it all).
        fanned = 0
        if fanout and not state.data.get("fanout_done"):
            fanned = await fan_out_all(stores, settings, poster_ids + quiet_ids)
            readers_ids = [users[f"reader{i}"] for i in range(readers)]
            readers_ids += [users[WIDE_READER]] if wide else []
            for reader in readers_ids:
                for followee, since in await stores.inbox.inbox_backfills(reader):
                    await stores.inbox.forget_backfill(reader, followee, since)
            state.data["fanout_done"] = True
            state.save()
        return {
            "users": len(users),
            "photos": state.data.get("photos_done", 0),
            "quiet_photos": state.data.get("quiet_photos_done", 0),
            "inbox_rows_written": fanned,
            "pool": len(pool_records),
            "state": str(state.path),
        }
    finally:
        await stores.close()


async def bulk_followers(stores, followee: int, count: int) -> None:
    """``count`` synthetic followers of ``followee``. On Cassandra the follow graph's two
    rows a follow writes (``user_follows``, ``user_followers``) go straight in, unlogged
    and 128 at a time, and the followee's followers counter is set once (the API's
    ``follow`` is a read, a logged batch and a counter batch each: ~125 a second on the
    shared dev cluster, 13 minutes for 100,000); no inbox backfill is recorded, as no
    reader reads these inboxes. Elsewhere (the embedded store, in tests) the API's own
    ``follow``. Resumable: rows are written again, the counter topped up to ``count``."""
    followers = [synthetic_follower(k) for k in range(count)]
    at = datetime.now(UTC)
    metadata = stores.metadata
    if metadata.name != "cassandra":
        gate = asyncio.Semaphore(FOLLOWS_IN_FLIGHT)

        async def follow(follower: int) -> None:
            async with gate:
                await stores.graph.follow(follower, followee, at)

        await asyncio.gather(*(follow(f) for f in followers))
        return
    from instastore.storage.cassandra import statements as cql

    gate = asyncio.Semaphore(128)

    async def rows(follower: int) -> None:
        async with gate:
            await metadata._q(cql.INSERT_FOLLOWER, followee, follower, at)
            await metadata._q(cql.INSERT_FOLLOW, follower, followee, at)

    for start in tqdm(range(0, count, 5000), desc=f"{count} followers", unit="x5000"):
        await asyncio.gather(*(rows(f) for f in followers[start : start + 5000]))
    counted, _ = await stores.graph.count_follows(followee)
    if counted != count:
        await metadata._q(cql.ADD_FOLLOWERS, count - counted, followee)


async def fan_out_all(stores, settings: Settings, owners: list[int]) -> int:
    """``Fanout.fan_out`` of each owner, FANOUTS_IN_FLIGHT at once; inbox rows written."""
    fanout = Fanout(stores.inbox, stores.graph, stores.photos, settings)
    gate = asyncio.Semaphore(FANOUTS_IN_FLIGHT)
    written = 0

    async def one(owner: int) -> None:
        nonlocal written
        async with gate:
            rows = await fanout.fan_out(owner)
        written += rows  # after the await: ``written += await ...`` would read it before

    with tqdm(total=len(owners), desc="fan-out", unit="owner") as bar:
        for start in range(0, len(owners), 200):
            chunk = owners[start : start + 200]
            await asyncio.gather(*(one(o) for o in chunk))
            bar.update(len(chunk))
    return written


async def _one(data: bytes):
    yield data
