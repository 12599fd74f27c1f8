"""The driver session, bridged to asyncio, and the one place driver errors are translated.

The driver runs its own I/O thread (libev where available); ``execute`` hands it a
statement and awaits an asyncio future that the driver's callbacks complete through
``loop.call_soon_threadsafe``: no thread per query, nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from cassandra import (
    DriverException,
    OperationTimedOut,
    ReadFailure,
    ReadTimeout,
    Unavailable as DriverUnavailable,
    WriteFailure,
    WriteTimeout,
)
from cassandra.cluster import NoHostAvailable, ResponseFuture, Session

from instastore.errors import StorageError, Unavailable

_UNAVAILABLE = (NoHostAvailable, OperationTimedOut, DriverUnavailable, ReadTimeout, WriteTimeout, ReadFailure, WriteFailure)


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Re-raise driver exceptions as instastore's own (httpx's map_httpcore_exceptions)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise Unavailable(f"Cassandra unavailable during {what}: {exc}") from exc
    except DriverException as exc:
        raise StorageError(f"Cassandra failed during {what}: {exc}") from exc
    except ConnectionError as exc:
        raise Unavailable(f"Cassandra unreachable during {what}: {exc}") from exc


def _bridge(response: ResponseFuture, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
    future = loop.create_future()

    def on_result(rows: Any) -> None:
        loop.call_soon_threadsafe(_settle, future, rows, None)

    def on_error(exc: BaseException) -> None:
        loop.call_soon_threadsafe(_settle, future, None, exc)

    response.add_callbacks(on_result, on_error)
    return future


def _settle(future: asyncio.Future, rows: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(rows)


async def execute(session: Session, statement: Any, params: Any = None, *, what: str) -> list:
    """Run one statement and return all rows of its first page as a list.

    Callers bound their queries with LIMIT, so one page is the whole answer."""
    loop = asyncio.get_running_loop()
    with translate_errors(what):
        response = session.execute_async(statement, params)
        rows = await _bridge(response, loop)
    return list(rows) if rows is not None else []
