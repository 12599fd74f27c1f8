"""Starting, watching and stopping the cluster's JVMs.

Each JVM runs in its own process group (so a Ctrl-C in the shell that ran ``up`` does not
reach it) with its output appended to a log file. A pid read back from the state file is
trusted only while ``/proc/<pid>/cmdline`` still names the node's folder, so a recycled
pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from instastore.errors import ClusterError

STOP_TIMEOUT_S = 60.0  # a Cassandra node drains on SIGTERM; past this it gets SIGKILL
LOG_TAIL_LINES = 25

# Children started by this process, so they are reaped through their Popen (no zombies,
# no ResourceWarning); daemons started by another `instastore` process are not here.
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: list[str], log_path: Path, cwd: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    return proc.pid


def is_running(pid: int | None, marker: str) -> bool:
    """True when ``pid`` is a live (not zombie) process whose command line contains
    ``marker``."""
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state == "Z":
        _reap(pid)
        return False
    # An empty command line is a process between fork and exec (or a kernel thread,
    # which is never one of ours): count it as running.
    return not cmdline or marker in cmdline


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(pids: list[tuple[int, str]], timeout: float = STOP_TIMEOUT_S) -> list[int]:
    """SIGTERM every live pid, wait, then SIGKILL what is left. Returns the pids that
    needed SIGKILL."""
    live = [(pid, marker) for pid, marker in pids if is_running(pid, marker)]
    for pid, _ in live:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_running(p, m) for p, m in live):
        time.sleep(0.2)
    killed = []
    for pid, marker in live:
        if is_running(pid, marker):
            _signal(pid, signal.SIGKILL)
            killed.append(pid)
    for pid, marker in live:
        while is_running(pid, marker):
            time.sleep(0.05)
    return killed


def kill(pid: int, marker: str) -> None:
    """SIGKILL one process and wait for it to be gone (failure tests)."""
    if is_running(pid, marker):
        _signal(pid, signal.SIGKILL)
    while is_running(pid, marker):
        time.sleep(0.05)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def port_is_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def require_free_ports(ports: list[tuple[str, int, str]]) -> None:
    for address, port, what in ports:
        if not port_is_free(address, port):
            raise ClusterError(
                f"port {address}:{port} ({what}) is already in use; stop what holds it "
                f"(`ss -ltnp 'sport = :{port}'`) or run `instastore cluster down`"
            )


def accepts_connections(address: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def raise_dead(what: str, logs: list[Path]) -> None:
    detail = "\n".join(f"--- last lines of {p} ---\n{tail(p)}" for p in logs if p.exists())
    raise ClusterError(f"{what} died while starting; see its log below", detail)
