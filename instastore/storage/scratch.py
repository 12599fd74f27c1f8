"""Temporary ("scratch") file names that say who writes them, and the one rule for when
such a file is provably abandoned.

Several worker processes share a data folder (and several hosts an HDFS folder), each
with writes in flight, so a cleaner must never remove a scratch file just because it
exists. A scratch name carries its writer: ``<prefix><host>_<pid>_<random><suffix>``. A
file is abandoned when its writer is a process of this host that no longer runs, or when
its modification time is older than ``SCRATCH_GRACE``. Anything else is left alone.

A file's modification time is no sign of life by itself: on HDFS an open file keeps its
creation time until it is closed, so a long write would look abandoned while written. A
writer therefore renews it (``renewed``: every ``SCRATCH_HEARTBEAT``, far inside the
grace) for as long as it writes; only a writer that stopped renewing (its process dead,
or its event loop stuck) leaves a file that ages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

# No write of ours stalls this long: the server's read timeouts end a stalled upload far
# sooner, and a blob write streams from a local file. Older scratch files are leftovers.
SCRATCH_GRACE = timedelta(hours=1)
# How often a writer renews its scratch file's modification time: a twelfth of the grace,
# so eleven renewals in a row can fail (a NameNode restart) before a live write looks old.
SCRATCH_HEARTBEAT = timedelta(minutes=5)


def host() -> str:
    return socket.gethostname().replace("_", "-") or "localhost"


def owner_tag() -> str:
    """``<host>_<pid>_``: what a scratch name starts with after its prefix."""
    return f"{host()}_{os.getpid()}_"


def scratch_name(prefix: str = "", suffix: str = "") -> str:
    return f"{prefix}{owner_tag()}{uuid.uuid4().hex}{suffix}"


def abandoned(
    name: str, prefix: str, modified: datetime, now: datetime, grace: timedelta = SCRATCH_GRACE
) -> bool:
    """Whether the scratch file ``name`` (made with ``prefix``) is a leftover: its writer
    did not renew it for ``grace``, or is a process of this host that is gone."""
    if now - modified > grace:
        return True
    writer_host, _, rest = name.removeprefix(prefix).partition("_")
    pid_text = rest.partition("_")[0]
    if writer_host != host() or not pid_text.isdigit():
        return False  # another host's writer (or an old name): only age tells
    return not running(int(pid_text))


def running(pid: int) -> bool:
    """Is process ``pid`` of this host running (a zombie counts as running)?"""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


@contextlib.asynccontextmanager
async def renewed(touch: Callable[[], Awaitable[object]], what: str) -> AsyncIterator[None]:
    """While the body runs, ``touch`` (set the scratch file's modification time to now)
    every ``SCRATCH_HEARTBEAT``: the writer's heartbeat. A failed touch (the file not
    made yet, the store briefly away) is logged and the next one tried."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(SCRATCH_HEARTBEAT.total_seconds())
            try:
                await touch()
            except Exception as exc:  # any failure: the next beat tries again
                log.info("could not renew the modification time of %s: %r", what, exc)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def remove_abandoned_files(
    folder: Path, prefix: str, suffix: str, now: datetime, grace: timedelta = SCRATCH_GRACE
) -> int:
    """Remove the local scratch files ``<prefix>*<suffix>`` in ``folder`` whose writer is
    gone; return how many. Blocking: run it in a worker thread."""
    removed = 0
    for path in folder.glob(f"{prefix}*{suffix}"):
        try:
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            if abandoned(path.name, prefix, modified, now, grace):
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # finished (or removed) meanwhile
    return removed
