"""Temporary ("scratch") file names that say who writes them, and the one rule for when
such a file is provably abandoned.

Several worker processes share a data folder (and several hosts an HDFS folder), each
with writes in flight, so a cleaner must never remove a scratch file just because it
exists. A scratch name carries its writer: ``<prefix><host>_<pid>_<random><suffix>``. A
file is abandoned when its writer is a process of this host that no longer runs, or when
nobody has changed it for ``SCRATCH_GRACE``. Anything else is left alone.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

# No write of ours stalls this long: the server's read timeouts end a stalled upload far
# sooner, and a blob write streams from a local file. Older scratch files are leftovers.
SCRATCH_GRACE = timedelta(hours=1)


def host() -> str:
    return socket.gethostname().replace("_", "-") or "localhost"


def owner_tag() -> str:
    """``<host>_<pid>_``: what a scratch name starts with after its prefix."""
    return f"{host()}_{os.getpid()}_"


def scratch_name(prefix: str = "", suffix: str = "") -> str:
    return f"{prefix}{owner_tag()}{uuid.uuid4().hex}{suffix}"


def abandoned(name: str, prefix: str, modified: datetime, now: datetime) -> bool:
    """Whether the scratch file ``name`` (made with ``prefix``) is a leftover."""
    if now - modified > SCRATCH_GRACE:
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


def remove_abandoned_files(folder: Path, prefix: str, suffix: str, now: datetime) -> int:
    """Remove the local scratch files ``<prefix>*<suffix>`` in ``folder`` whose writer is
    gone; return how many. Blocking: run it in a worker thread."""
    removed = 0
    for path in folder.glob(f"{prefix}*{suffix}"):
        try:
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            if abandoned(path.name, prefix, modified, now):
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # finished (or removed) meanwhile
    return removed
