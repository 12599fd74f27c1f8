"""64-bit time-sortable ids (Instagram's scheme) and per-photo media secrets.

    | 41 bits: ms since EPOCH | 13 bits: worker (shard) | 10 bits: sequence |

Sorting ids sorts by creation time, so an id is also a clustering key and a page cursor.
Ids are unique across processes because each process holds its worker number alone: a
lease in the metadata store (``instastore.leases``), checked on every id by the
generator's ``fence``. Within one process they strictly increase: past 1,024 ids in a
millisecond the generator waits for the next millisecond, and when the clock steps back
it waits for it to catch up, up to ``MAX_CLOCK_BACKWARDS_MS``, and refuses beyond; a
generator ``start``ed after a floor makes only ids past it. This module never does I/O.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from instastore.errors import InstastoreError, InvalidInput

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z; 41 bits of ms last until 2094
TIME_BITS = 41
WORKER_BITS = 13
SEQUENCE_BITS = 10
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
TIME_SHIFT = WORKER_BITS + SEQUENCE_BITS
# Stored as signed 64-bit integers (CQL bigint, SQLite INTEGER): the top time bit stays 0
# until 2059, so the largest valid id is 2**63 - 1.
MAX_ID = (1 << 63) - 1
MAX_CLOCK_BACKWARDS_MS = 2_000  # NTP slews are ms; a bigger step back is a broken clock

# Wide rows are bucketed by the id's time: 2**29 ms (about 6.2 days) per bucket keeps a
# user's photos, or a common title word's postings, well under 100k rows per partition.
BUCKET_SHIFT = TIME_SHIFT + 29

MEDIA_SECRET_BYTES = 12  # 96 random bits in every media URL: ids alone fetch nothing


class ClockWentBackwards(InstastoreError):
    """The clock stepped back further than the generator is willing to wait."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class IdGenerator:
    """Thread-safe generator of strictly increasing ids for one worker."""

    def __init__(
        self,
        worker_id: int,
        clock: Callable[[], int] = now_ms,
        sleep: Callable[[float], None] = time.sleep,
        fence: Callable[[int], None] | None = None,
    ) -> None:
        if not 0 <= worker_id <= MAX_WORKER:
            raise ValueError(f"worker_id must be 0..{MAX_WORKER}, not {worker_id}")
        self.worker_id = worker_id
        self._clock = clock
        self._sleep = sleep
        self._fence = fence  # raises unless this process may make an id of that ms now
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def start(self, worker_id: int, after_ms: int) -> None:
        """Make ids as ``worker_id`` from now on, each of a millisecond past
        ``after_ms`` (the last one earlier holders of that number may have used)."""
        if not 0 <= worker_id <= MAX_WORKER:
            raise ValueError(f"worker_id must be 0..{MAX_WORKER}, not {worker_id}")
        with self._lock:
            self.worker_id = worker_id
            if after_ms >= self._last_ms:
                self._last_ms = after_ms
                self._sequence = MAX_SEQUENCE  # the next id takes the next millisecond

    def next_id(self) -> int:
        with self._lock:
            ms = self._clock()
            if ms < self._last_ms:
                behind = self._last_ms - ms
                if behind > MAX_CLOCK_BACKWARDS_MS:
                    raise ClockWentBackwards(f"clock went back {behind} ms; refusing to make ids")
                ms = self._wait_until(self._last_ms)
            sequence = 0
            if ms == self._last_ms:
                sequence = self._sequence + 1
                if sequence > MAX_SEQUENCE:
                    ms = self._wait_until(self._last_ms + 1)
                    sequence = 0
            if self._fence is not None:
                self._fence(ms)  # before anything changes: a refusal uses up nothing
            self._last_ms, self._sequence = ms, sequence
            return make_id(ms, self.worker_id, sequence)

    def _wait_until(self, target_ms: int) -> int:
        ms = self._clock()
        while ms < target_ms:
            self._sleep((target_ms - ms) / 1000)
            ms = self._clock()
        return ms


def make_id(unix_ms: int, worker_id: int, sequence: int) -> int:
    offset = unix_ms - EPOCH_MS
    if not 0 <= offset < (1 << (TIME_BITS - 1)):  # see MAX_ID
        raise ValueError(f"time {unix_ms} ms is outside the id epoch")
    return (offset << TIME_SHIFT) | (worker_id << SEQUENCE_BITS) | sequence


def id_for_time(unix_ms: int) -> int:
    """The smallest id of a millisecond: a cursor meaning "before this time"."""
    return make_id(unix_ms, 0, 0)


def unix_ms_of(id_: int) -> int:
    return (id_ >> TIME_SHIFT) + EPOCH_MS


def created_at(id_: int) -> datetime:
    return datetime.fromtimestamp(unix_ms_of(id_) / 1000, tz=UTC)


def worker_of(id_: int) -> int:
    return (id_ >> SEQUENCE_BITS) & MAX_WORKER


def bucket_of(id_: int) -> int:
    """The time bucket of the wide rows (user photos, title terms) that hold this id."""
    return id_ >> BUCKET_SHIFT


def format_id(id_: int) -> str:
    """Ids travel as decimal strings: JSON numbers lose precision past 2**53."""
    return str(id_)


_DECIMAL = re.compile(r"[0-9]{1,20}")  # 2**63 - 1 has 19 digits; one more is still "out of range"


def parse_id(text: str, what: str = "id") -> int:
    """An id from a URL or body; ``InvalidInput`` unless it is a valid id."""
    # str.isdigit() takes "²" and "①", which int() refuses: ASCII digits only, and few of them.
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        raise InvalidInput(f"{what} must be a decimal id, not {text!r:.60}")
    value = int(text)
    if not 0 < value <= MAX_ID:
        raise InvalidInput(f"{what} {text} is out of range")
    return value


def new_media_secret() -> str:
    return secrets.token_urlsafe(MEDIA_SECRET_BYTES)
