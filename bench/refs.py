"""The references the service is measured against, on the same machine, in the same run:

- direct WebHDFS OPEN of the same media bytes (NameNode redirect, then the DataNode);
- nginx serving the same bytes from local files (a near-physical ceiling here);
- the raw CQL one timeline page needs, issued straight through the driver;
- Pillow alone processing the same upload images.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cassandra.concurrent import execute_concurrent_with_args

from bench.hosts import stop_nginx
from instastore import ids as idlib
from instastore import media
from instastore.config import Settings
from instastore.storage.cassandra.session import build_cluster
from instastore.storage.cassandra.statements import qualified

NGINX_CONF = """
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    types {{ image/jpeg jpg; }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {prefix}/www;
    }}
}}
"""


def wrk(url: str, duration: int, connections: int, threads: int = 2) -> dict:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def ms(match):
        value, unit = float(match.group(1)), match.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 3)

    if non2xx:
        raise SystemExit(
            f"wrk got {non2xx.group(1)} error responses from {url}: the figure would be meaningless"
        )
    return {"requests_per_s": rps, "p50_ms": ms(p50), "p99_ms": ms(p99)}


class Nginx:
    """nginx (Debian's package) serving a folder of files on a port, started and stopped here."""

    def __init__(self, files: dict[str, bytes], port: int = 8099, workers: int = 2) -> None:
        if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
            raise SystemExit("nginx is needed for the reference: apt-get install nginx-light")
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.prefix.chmod(0o755)  # nginx's workers run as an unprivileged user
        (self.prefix / "www").mkdir(mode=0o755)
        for name, data in files.items():
            (self.prefix / "www" / name).write_bytes(data)
            (self.prefix / "www" / name).chmod(0o644)
        (self.prefix / "nginx.conf").write_text(
            NGINX_CONF.format(workers=workers, prefix=self.prefix, port=port)
        )
        self.port = port

    def __enter__(self) -> Nginx:
        subprocess.run(
            [self.binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")], check=True
        )
        time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        stop_nginx(self.prefix, self.binary)
        shutil.rmtree(self.prefix, ignore_errors=True)


def raw_cql_timeline(settings: Settings, reader_id: int, pages: int = 300, limit: int = 20) -> dict:
    """One "recent" timeline page, as the service reads it, straight through the driver:
    the followee list, their newest ids (IN chunks of 100), the rows of the followees
    whose newest photos make the page, the photo records, like counts and owners."""
    cluster = build_cluster(settings)
    session = cluster.connect()  # no keyspace set: tables named in it (statements.qualified)

    def prepare(text: str):
        return session.prepare(qualified(text, settings.cassandra_keyspace))

    q = {
        "following": prepare(
            "SELECT followee_id FROM user_follows WHERE user_id = ? AND followee_id > ? LIMIT ?"
        ),
        "latest": prepare("SELECT user_id, photo_id FROM user_latest WHERE user_id IN ?"),
        "buckets": prepare(
            "SELECT bucket FROM user_photo_buckets WHERE user_id = ? AND bucket <= ? LIMIT 32"
        ),
        "rows": prepare(
            "SELECT photo_id FROM user_photos "
            "WHERE user_id = ? AND bucket = ? AND photo_id < ? LIMIT ?"
        ),
        "photo": prepare("SELECT record, deleted_at FROM photos WHERE photo_id = ?"),
        "likes": prepare("SELECT likes FROM like_counts WHERE photo_id = ?"),
        "user": prepare("SELECT user_id, username FROM users WHERE user_id = ?"),
    }
    timings = []
    try:
        for _ in range(pages):
            started = time.perf_counter()
            followees = [
                r.followee_id for r in session.execute(q["following"], (reader_id, 0, 10_000))
            ]
            chunks = [(followees[i : i + 100],) for i in range(0, len(followees), 100)]
            latest = {}
            for _ok, rows in execute_concurrent_with_args(
                session, q["latest"], chunks, concurrency=16
            ):
                latest.update({r.user_id: r.photo_id for r in rows})
            top = sorted(latest, key=latest.get, reverse=True)[: limit + 1]
            bucket_rows = execute_concurrent_with_args(
                session,
                q["buckets"],
                [(u, idlib.bucket_of(latest[u])) for u in top],
                concurrency=32,
            )
            args = [
                (u, rows[0].bucket, idlib.MAX_ID, limit + 1)
                for u, (_ok, rows) in zip(top, bucket_rows, strict=True)
                if rows
            ]
            ids = []
            for _ok, rows in execute_concurrent_with_args(session, q["rows"], args, concurrency=32):
                ids += [r.photo_id for r in rows]
            page = sorted(ids, reverse=True)[: limit + 1]
            execute_concurrent_with_args(session, q["photo"], [(i,) for i in page], concurrency=32)
            execute_concurrent_with_args(
                session, q["likes"], [(i,) for i in page[:limit]], concurrency=32
            )
            owners = {latest_owner for latest_owner in top[:limit]}
            execute_concurrent_with_args(session, q["user"], [(o,) for o in owners], concurrency=32)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        cluster.shutdown()
    in_order = [round(t, 3) for t in timings]
    timings.sort()
    return {
        "pages": pages,
        "timings_ms": in_order,
        "followees": len(followees),
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(timings[min(len(timings) - 1, int(0.99 * len(timings)))], 2),
    }


def _process_one(args) -> float:
    path, max_pixels = args
    started = time.perf_counter()
    media.process(Path(path), media.TYPES["jpeg"], max_pixels)
    return time.perf_counter() - started


def pillow_alone(images: list[bytes], duration: float, processes: int) -> dict:
    """Images per second through the service's own media pipeline, with no service."""
    folder = Path(tempfile.mkdtemp(prefix="bench-pillow-"))
    paths = []
    for i, data in enumerate(images):
        path = folder / f"{i}.jpg"
        path.write_bytes(data)
        paths.append(str(path))
    done = 0
    started = time.perf_counter()
    with ProcessPoolExecutor(processes) as pool:
        while time.perf_counter() - started < duration:
            done += len(list(pool.map(_process_one, [(p, 50_000_000) for p in paths])))
    elapsed = time.perf_counter() - started
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "images": done,
        "seconds": round(elapsed, 2),
        "images_per_s": round(done / elapsed, 2),
        "processes": processes,
    }


def asyncio_run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)
