"""What the service is doing, as Prometheus metrics (docs/OPERATIONS.md, "Metrics").

Every family is declared here, once, with its labels; the code that does the work counts
into them (the HTTP middleware, the metered stores, the caches, uploads, media, the jobs).
With ``serve --workers N`` each worker writes its values to files in the folder
``PROMETHEUS_MULTIPROC_DIR`` names (prometheus-client's multiprocess mode, which ``run``
sets up before the workers start), and ``/metrics`` on any worker adds up every worker's
files; with one process the values live in memory. Which of the two is decided when
prometheus-client is first imported, so that variable must be set before then.

Labels are bounded: routes are templates, never paths; stores, operations, caches, jobs
and outcomes are names from the code, never from a request.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    write_to_textfile,
)

from instastore.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    OutcomeUnknown,
    StorageError,
    Unavailable,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
LOOP_LAG_INTERVAL_S = 0.5
TEXTFILE_INTERVAL_S = 10.0  # a job's --metrics-file is rewritten this often

# Seconds: from a cached thumbnail (well under a millisecond) to a large upload.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

HTTP_REQUESTS = Counter(
    "instastore_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "instastore_http_request_duration_seconds",
    "Time from a request's arrival to its last byte sent, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "instastore_http_requests_in_flight",
    "Requests being answered now.",
    multiprocess_mode="livesum",
)
STORE_OPERATIONS = Counter(
    "instastore_store_operations",
    "Calls into a store, by store (cassandra, webhdfs, sqlite, files), operation and outcome "
    "(ok, not_found, conflict, invalid, unavailable, unknown: the write may have landed, "
    "cancelled, error).",
    ["store", "operation", "outcome"],
)
STORE_SECONDS = Histogram(
    "instastore_store_operation_duration_seconds",
    "Time of each call into a store (a streamed read: until its last chunk).",
    ["store", "operation"],
    buckets=LATENCY_BUCKETS,
)
CACHE_LOOKUPS = Counter(
    "instastore_cache_lookups",
    "In-process cache lookups, by cache and result (hit, stale: served while refreshed, miss).",
    ["cache", "result"],
)
UPLOADS = Counter(
    "instastore_uploads",
    "Uploads processed, by outcome (stored, deduplicated: bytes shared with an earlier "
    "upload, replayed: an Idempotency-Key seen before, shed: past the decoding queue, failed).",
    ["outcome"],
)
UPLOAD_BYTES = Counter("instastore_upload_bytes", "Bytes of uploads received (the originals).")
UPLOAD_SECONDS = Histogram(
    "instastore_upload_processing_seconds",
    "Time from a received upload to its stored photo (renditions, blobs, records).",
    buckets=LATENCY_BUCKETS,
)
FANOUT_ROWS = Counter(
    "instastore_fanout_rows",
    "Timeline inbox rows written, by kind (fanout: a new photo to its followers; backfill: a "
    "new followee's recent photos to its follower).",
    ["kind"],
)
FANOUTS = Counter(
    "instastore_fanouts",
    "Fan-outs of a poster's new photos, by outcome (done; skipped: more followers than "
    "fanout_max_followers, merged at read instead; failed: a fan-out or backfill left for the "
    "sweep or the reader's next page).",
    ["outcome"],
)
MEDIA_BYTES = Counter(
    "instastore_media_bytes_served",
    "Media body bytes sent, by rendition and path (buffered: small renditions, kept in the "
    "media cache; streamed: from the blob store chunk by chunk).",
    ["rendition", "path"],
)
JOB_RUNS = Counter(
    "instastore_job_runs",
    "Runs of background and storage jobs (purge, gc, pack, compact), by job and outcome.",
    ["job", "outcome"],
)
JOB_ITEMS = Counter(
    "instastore_job_items",
    "Items a job has done (photos purged or packed, blobs removed, volumes compacted): its "
    "progress.",
    ["job"],
)
JOB_RUNNING = Gauge(
    "instastore_jobs_running",
    "Jobs running now, by job.",
    ["job"],
    multiprocess_mode="livesum",
)
JOB_LAST_SUCCESS = Gauge(
    "instastore_job_last_success_timestamp_seconds",
    "When each job last finished without an error (Unix time).",
    ["job"],
    multiprocess_mode="max",
)
LOOP_LAG = Gauge(
    "instastore_event_loop_lag_seconds",
    "How late the event loop woke a timer at the last check (the worst worker's).",
    multiprocess_mode="livemax",
)
LOOP_LAG_SECONDS = Histogram(
    "instastore_event_loop_lag_check_seconds",
    f"How late the event loop woke a {LOOP_LAG_INTERVAL_S} s timer, every check.",
    buckets=LATENCY_BUCKETS,
)


def outcome(exc: BaseException | None) -> str:
    """The outcome label of a store call that raised ``exc`` (None: it returned)."""
    if exc is None or isinstance(exc, GeneratorExit):  # a reader that stopped early
        return "ok"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    for kind, label in (
        (NotFound, "not_found"),
        (Conflict, "conflict"),
        (InvalidInput, "invalid"),
        (OutcomeUnknown, "unknown"),
        (Unavailable, "unavailable"),
        (StorageError, "error"),
    ):
        if isinstance(exc, kind):
            return label
    return "error"


@contextlib.contextmanager
def store_call(store: str, operation: str) -> Iterator[None]:
    """Count and time one store call (an exception passes through, counted)."""
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        STORE_SECONDS.labels(store, operation).observe(time.perf_counter() - started)
        STORE_OPERATIONS.labels(store, operation, outcome(error)).inc()


@contextlib.contextmanager
def job(name: str) -> Iterator[None]:
    """Count one run of a job: running while inside, then its outcome (ok or error)."""
    running = JOB_RUNNING.labels(name)
    running.inc()
    try:
        yield
    except BaseException:
        JOB_RUNS.labels(name, "error").inc()
        raise
    else:
        JOB_RUNS.labels(name, "ok").inc()
        JOB_LAST_SUCCESS.labels(name).set(time.time())
    finally:
        running.dec()


def job_progress(name: str, done: int = 1) -> None:
    JOB_ITEMS.labels(name).inc(done)


def exposition() -> bytes:
    """Every family in the text format: this process's, or with multiprocess mode on,
    the sum over every worker's files (blocking file reads: call it in a thread, after
    ``fold()`` on the loop)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def write_textfile(path: str | os.PathLike[str]) -> None:
    """This process's metrics, in the text format, into ``path`` (whole: written beside
    it and renamed), for node_exporter's textfile collector: how a job that runs as its
    own process (cron, a systemd timer) reports."""
    fold()  # the counts the main thread holds (nothing, called from another thread)
    write_to_textfile(os.fspath(path), REGISTRY)


@contextlib.contextmanager
def textfile_every(
    path: str | os.PathLike[str] | None, interval_s: float = TEXTFILE_INTERVAL_S
) -> Iterator[None]:
    """While inside (on a running loop), write this process's metrics to ``path`` every
    ``interval_s`` (nothing without a path): a long job's progress, seen as it goes."""
    if path is None:
        yield
        return
    loop = asyncio.get_running_loop()

    async def keep_writing() -> None:
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(write_textfile, path)

    task = loop.create_task(keep_writing())
    try:
        yield
    finally:
        task.cancel()


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay in the sums)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


async def watch_loop_lag(interval_s: float = LOOP_LAG_INTERVAL_S) -> AsyncIterator[None]:
    """For an aiohttp ``cleanup_ctx``: measure, while the app runs, how late the loop
    wakes a timer; a loop held by blocking work shows here before anywhere else."""
    loop = asyncio.get_running_loop()

    async def watch() -> None:
        while True:
            expected = loop.time() + interval_s
            await asyncio.sleep(interval_s)
            lag = max(0.0, loop.time() - expected)
            LOOP_LAG.set(lag)
            LOOP_LAG_SECONDS.observe(lag)

    task = loop.create_task(watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    fold()  # the last turn's counts, before the worker's files are left for good


# ---- the request path's counts, kept without a lock ---------------------------------
#
# prometheus-client takes a lock for every increment (and, with several workers, writes
# the value into its file): about 7% of the event loop's time on a hot media GET, nine of
# them a request. The counters and timers the request path updates are therefore bound
# as ``LoopCounter``/``LoopHistogram``: on the main thread (the event loop's, in every
# ``serve`` process) they add to plain numbers, and ``fold`` moves what they hold into
# the prometheus values once per turn of the loop (scheduled by the first count after a
# fold), so however many requests one turn answers, each value is locked and written
# once. /metrics and a job's textfile fold first, so nothing counted before a scrape is
# left out of it; another worker's counts are in the files by the end of that worker's
# current loop turn. Counts made on any other thread go straight to prometheus, under its
# lock: the plain numbers are only ever touched by the main thread.

_MAIN_THREAD = threading.main_thread().ident
_dirty: list[LoopCounter | LoopHistogram] = []  # holding counts not folded yet


def _mark(item: LoopCounter | LoopHistogram) -> None:
    _dirty.append(item)
    if len(_dirty) == 1:
        # No loop running here: folded by the next scrape or ``fold()``.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon(fold)


def fold() -> None:
    """Move every count held by the loop counters into prometheus; main thread only
    (elsewhere it does nothing: those numbers are the main thread's)."""
    if threading.get_ident() != _MAIN_THREAD:
        return
    while _dirty:
        _dirty.pop().fold()


class LoopCounter:
    """A bound counter (``Counter.labels(...)``, or an unlabelled counter) for the event
    loop's hot path: counted without a lock, folded into ``child`` (see ``fold``)."""

    __slots__ = ("child", "held", "pending")

    def __init__(self, child: Counter | Gauge) -> None:
        self.child = child
        self.pending = 0.0
        self.held = False  # in ``_dirty``

    def inc(self, amount: float = 1.0) -> None:
        if threading.get_ident() != _MAIN_THREAD:
            self.child.inc(amount)
            return
        self.pending += amount
        if not self.held:
            self.held = True
            _mark(self)

    def fold(self) -> None:
        amount, self.pending, self.held = self.pending, 0.0, False
        if amount:
            self.child.inc(amount)


class LoopHistogram:
    """A bound histogram (``Histogram.labels(...)``) for the event loop's hot path: the
    observations' bucket counts and sum kept without a lock, added to ``child``'s own
    bucket and sum values by ``fold``: the same samples as one ``observe`` each."""

    __slots__ = ("bounds", "child", "counts", "held", "total")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        self.bounds: list[float] = list(child._upper_bounds)  # ends with +Inf
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.held = False

    def observe(self, amount: float) -> None:
        if threading.get_ident() != _MAIN_THREAD:
            self.child.observe(amount)
            return
        # prometheus' bucket: the first upper bound >= amount (``Histogram.observe``)
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.total += amount
        if not self.held:
            self.held = True
            _mark(self)

    def fold(self) -> None:
        counts, total = self.counts, self.total
        self.counts, self.total, self.held = [0] * len(self.bounds), 0.0, False
        buckets = self.child._buckets
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)
        if any(counts):
            self.child._sum.inc(total)
