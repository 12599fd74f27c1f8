"""The driver session, bridged to asyncio, and the one place driver errors are translated;
``build_cluster`` makes the driver's cluster object from the settings.

The driver runs its own I/O thread (libev where available); ``execute`` hands it a
statement and awaits an asyncio future that the driver's callbacks complete through
``loop.call_soon_threadsafe``: no thread per query, nothing blocks the event loop.

A read is bounded by ``cassandra_request_timeout``; it is sent to a second and a third
coordinator if the first has not answered within ``cassandra_speculative_delay``, and goes
to the next one at once when its coordinator's connection breaks: a node that dies costs
a read a fraction of a second, not a timeout. Writes (the ``WRITES`` profile) keep the
driver's own retry decisions, no speculation and ``WRITE_REQUEST_TIMEOUT_S``; an unknown
outcome is ``settle``'s to decide (``translate_errors``). Schema changes, migrations and
batch jobs' scans run in the ``BATCH`` profile: one long bound, no speculation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
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
    ConstantSpeculativeExecutionPolicy,
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    RetryPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.query import (
    _clean_column_name,
    _sanitize_identifiers,
)

from instastore.config import Settings
from instastore.errors import OutcomeUnknown, StorageError, Unavailable

CONNECT_TIMEOUT_S = 10.0
# Schema changes, migrations and batch jobs' scans (pages of hundreds of rows, a DDL
# statement waiting for schema agreement): long, and never sent twice at once.
BATCH = "batch"  # the execution profile's name
BATCH_REQUEST_TIMEOUT_S = 60.0
# Writes: a logged batch writes the batch log on two replicas first, and a lightweight
# transaction takes four round trips of Paxos; while a node is replaced, both took longer
# than a read's bound (uploads failed as "may or may not have been written" at 2 s). They
# keep the driver's default bound; reads keep theirs short, and speculate.
WRITES = "writes"  # the execution profile's name
WRITE_REQUEST_TIMEOUT_S = 12.0
SPECULATIVE_EXECUTIONS = 2  # at most: the other two replicas of replication factor 3
# A connection that sent nothing for this long is probed, and one whose probe is not
# answered within it again is closed (the driver's defaults: 30 s), so that a node that
# hangs without closing its sockets is taken out of the query plans within seconds.
HEARTBEAT_S = 5.0
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


# A lightweight transaction (IF ...) or a counter update (SET c = c + ?): run twice, it
# may do its work twice, or answer "not applied" for its own first run.
_NOT_IDEMPOTENT = re.compile(r"\bIF\b|\bSET\s+(\w+)\s*=\s*\1\s*[+-]", re.IGNORECASE)


def idempotent(statement: str) -> bool:
    """Whether running ``statement`` twice leaves what running it once does: every read,
    and every plain INSERT, UPDATE or DELETE (both runs carry the same client timestamp)."""
    return _NOT_IDEMPOTENT.search(statement) is None


class FailFastRetryPolicy(RetryPolicy):  # type: ignore[misc]  # the driver has no types
    """The driver's retries, for statements marked idempotent only: a coordinator that
    broke its connection or timed out is left for the next one at once. Others are
    retried only where nothing ran (the coordinator refused them up front)."""

    def on_read_timeout(
        self,
        query: Any,
        consistency: Any,
        required_responses: int,
        received_responses: int,
        data_retrieved: bool,
        retry_num: int,
    ) -> tuple[int, Any]:
        return self._next_host_once(query, retry_num)

    def on_write_timeout(
        self,
        query: Any,
        consistency: Any,
        write_type: Any,
        required_responses: int,
        received_responses: int,
        retry_num: int,
    ) -> tuple[int, Any]:
        return self._next_host_once(query, retry_num)

    def on_request_error(
        self, query: Any, consistency: Any, error: Any, retry_num: int
    ) -> tuple[int, Any]:
        # Overloaded and bootstrapping coordinators refuse a request before it runs: any
        # statement may go to the next. Any other error (a broken connection, a server
        # error) may follow a request that ran in part: only an idempotent one goes on.
        if getattr(query, "is_idempotent", False) or isinstance(
            error, (OverloadedErrorMessage, IsBootstrappingErrorMessage)
        ):
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None

    def _next_host_once(self, query: Any, retry_num: int) -> tuple[int, Any]:
        if retry_num == 0 and getattr(query, "is_idempotent", False):
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None


def build_cluster(settings: Settings) -> Cluster:
    """The driver's cluster object for the settings (connect it off the event loop)."""
    routing = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc))
    common = {
        "load_balancing_policy": routing,
        "retry_policy": FailFastRetryPolicy(),
        "consistency_level": ConsistencyLevel.name_to_value[settings.consistency],
        "serial_consistency_level": ConsistencyLevel.LOCAL_SERIAL,
        "row_factory": named_rows,
    }
    profile = ExecutionProfile(
        **common,
        request_timeout=settings.cassandra_request_timeout,
        speculative_execution_policy=ConstantSpeculativeExecutionPolicy(
            settings.cassandra_speculative_delay, SPECULATIVE_EXECUTIONS
        ),
    )
    batch = ExecutionProfile(**common, request_timeout=BATCH_REQUEST_TIMEOUT_S)
    # Writes as before reads were bounded: the driver's own retry decisions, no
    # speculation (a fresh-clone run failed uploads while a node was replaced with both).
    writes = ExecutionProfile(
        **{**common, "retry_policy": RetryPolicy()},
        request_timeout=max(settings.cassandra_request_timeout, WRITE_REQUEST_TIMEOUT_S),
    )
    auth = None
    if settings.cassandra_username:
        auth = PlainTextAuthProvider(settings.cassandra_username, settings.cassandra_password)
    return Cluster(
        contact_points=settings.cassandra_contact_points,
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile, BATCH: batch, WRITES: writes},
        auth_provider=auth,
        connect_timeout=CONNECT_TIMEOUT_S,
        # The control connection's own queries (topology, the whole schema) at connect: the
        # driver's 2 s timed out on a node loaded by another cluster's bootstrap (a test run).
        control_connection_timeout=CONNECT_TIMEOUT_S,
        protocol_version=ProtocolVersion.V5,  # Cassandra 4.0+; skips two downgrade round trips
        idle_heartbeat_interval=HEARTBEAT_S,
        idle_heartbeat_timeout=HEARTBEAT_S,
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


async def execute(
    session: Session,
    statement: Any,
    params: Any = None,
    *,
    what: str,
    profile: object = EXEC_PROFILE_DEFAULT,
) -> list[Any]:
    """Run one statement and return all rows of its first page as a list.

    Callers bound their queries with LIMIT, so one page is the whole answer. ``profile``
    is ``BATCH`` for a batch job's read or a schema change."""
    loop = asyncio.get_running_loop()
    write = is_write(statement)
    if write and profile == EXEC_PROFILE_DEFAULT:
        profile = WRITES
    with translate_errors(what, write=write):
        response = session.execute_async(statement, params, execution_profile=profile)
        rows = await _bridge(response, loop)
    return list(rows) if rows is not None else []
