"""The driver session, bridged to asyncio, and the one place driver errors are translated;
``build_cluster`` makes the driver's cluster object from the settings.

The driver runs its own I/O thread (libev where available); ``execute`` hands it a
statement and awaits an asyncio future that the driver's callbacks complete through
``loop.call_soon_threadsafe``: no thread per query, nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import namedtuple
from collections.abc import Iterator, Sequence
from typing import Any

from cassandra import (
    ConsistencyLevel,
    DriverException,
    OperationTimedOut,
    ProtocolVersion,
    ReadFailure,
    ReadTimeout,
    WriteFailure,
    WriteTimeout,
)
from cassandra import (
    Unavailable as DriverUnavailable,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import (
    _clean_column_name,
    _sanitize_identifiers,
)

from instastore.config import Settings
from instastore.errors import OutcomeUnknown, StorageError, Unavailable

CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 12.0  # above Cassandra's own 5 s read/write timeouts, so theirs fire first
RECONNECT_MAX_S = 10.0  # longest pause between tries to reach a node that went away
MIN_TOKEN = -(2**63)  # Murmur3Partitioner: no key has this token, every key is above it

_UNAVAILABLE = (
    NoHostAvailable,
    OperationTimedOut,
    DriverUnavailable,
    ReadTimeout,
    WriteTimeout,
    ReadFailure,
    WriteFailure,
)
# A write failing with one of these may have reached replicas (a coordinator timed out
# waiting for them, some failed, or the connection broke after the request was sent).
_MAYBE_WRITTEN = (WriteTimeout, WriteFailure, OperationTimedOut, ConnectionException)
# The driver's words for a host it never sent the request to.
_NOT_SENT = ("Host has been marked down or removed", "Pool is shutdown")


def build_cluster(settings: Settings) -> Cluster:
    """The driver's cluster object for the settings (connect it off the event loop)."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)
        ),
        consistency_level=ConsistencyLevel.name_to_value[settings.consistency],
        serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
        request_timeout=REQUEST_TIMEOUT_S,
        row_factory=named_rows,
    )
    auth = None
    if settings.cassandra_username:
        auth = PlainTextAuthProvider(settings.cassandra_username, settings.cassandra_password)
    return Cluster(
        contact_points=settings.cassandra_contact_points,
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=auth,
        connect_timeout=CONNECT_TIMEOUT_S,
        # The control connection's own queries (topology, the whole schema) at connect: the
        # driver's 2 s timed out on a node loaded by another cluster's bootstrap (a test run).
        control_connection_timeout=CONNECT_TIMEOUT_S,
        protocol_version=ProtocolVersion.V5,  # Cassandra 4.0+; skips two downgrade round trips
        # The driver's default backs off to 10 minutes; a node back after a restart
        # should be used again within seconds.
        reconnection_policy=ExponentialReconnectionPolicy(
            base_delay=0.5, max_delay=RECONNECT_MAX_S
        ),
    )


def _maybe_written(exc: BaseException) -> bool:
    if isinstance(exc, NoHostAvailable):
        errors = exc.errors.values() if isinstance(exc.errors, dict) else ()
        return any(_maybe_written(e) and str(e) not in _NOT_SENT for e in errors)
    return isinstance(exc, _MAYBE_WRITTEN)


@contextlib.contextmanager
def translate_errors(what: str, write: bool = False) -> Iterator[None]:
    """Re-raise driver exceptions as instastore's own (httpx's map_httpcore_exceptions).

    For a ``write``, a timeout means "outcome unknown", never "not written": it raises
    ``OutcomeUnknown``. Reads, and writes a coordinator refused up front (the driver's
    ``Unavailable``: too few replicas alive), stay ``Unavailable``."""
    try:
        yield
    except _UNAVAILABLE as exc:
        if write and _maybe_written(exc):
            raise OutcomeUnknown(
                f"Cassandra timed out during {what}; it may or may not have been written: {exc}"
            ) from exc
        raise Unavailable(f"Cassandra unavailable during {what}: {exc}") from exc
    except ConnectionException as exc:
        if write:
            raise OutcomeUnknown(
                f"Cassandra connection broke during {what}; "
                f"it may or may not have been written: {exc}"
            ) from exc
        raise Unavailable(f"Cassandra unreachable during {what}: {exc}") from exc
    except DriverException as exc:
        raise StorageError(f"Cassandra failed during {what}: {exc}") from exc
    except ConnectionError as exc:
        raise Unavailable(f"Cassandra unreachable during {what}: {exc}") from exc


def named_rows(colnames: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """Rows as named tuples (``row.photo_id``, ``row[0]``), as the driver's default
    factory gives them, with one class per column list: the default defines a new class
    for every result, and that was ~15% of a busy server's CPU in a profile of cold reads
    and timelines (py-spy, ``collections.namedtuple``)."""
    return list(map(_row_class(tuple(colnames))._make, rows))


@functools.lru_cache(maxsize=1024)
def _row_class(colnames: tuple[str, ...]) -> Any:
    # The driver's own names for the columns ("[applied]" is ``row.applied``, "count(*)"
    # ``row.count``), and its fallback for names that are no identifiers (keywords, twins).
    names = [_clean_column_name(name) for name in colnames]
    try:
        return namedtuple("Row", names)
    except ValueError:
        return namedtuple("Row", _sanitize_identifiers(names))


def _bridge(response: ResponseFuture, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    future = loop.create_future()

    def on_result(rows: Any) -> None:
        loop.call_soon_threadsafe(_settle, future, rows, None)

    def on_error(exc: BaseException) -> None:
        loop.call_soon_threadsafe(_settle, future, None, exc)

    response.add_callbacks(on_result, on_error)
    return future


def _settle(future: asyncio.Future[Any], rows: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(rows)


def is_write(statement: Any) -> bool:
    """Everything but a SELECT writes (a batch, an INSERT, UPDATE or DELETE)."""
    text = statement if isinstance(statement, str) else getattr(statement, "query_string", None)
    return text is None or not text.lstrip().upper().startswith("SELECT")


async def execute(session: Session, statement: Any, params: Any = None, *, what: str) -> list[Any]:
    """Run one statement and return all rows of its first page as a list.

    Callers bound their queries with LIMIT, so one page is the whole answer."""
    loop = asyncio.get_running_loop()
    with translate_errors(what, write=is_write(statement)):
        response = session.execute_async(statement, params)
        rows = await _bridge(response, loop)
    return list(rows) if rows is not None else []
