"""A real `instastore serve` process for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(env: dict[str, str], log: Path, timeout: float = 60.0) -> tuple[subprocess.Popen, int]:
    """Start `instastore serve` with these INSTASTORE_* variables (on a free port unless
    one is given) and wait until it accepts connections: (the process, its port)."""
    env = {**os.environ, **env}
    port = int(env.setdefault("INSTASTORE_PORT", str(free_port())))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "instastore", "serve"], env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(
                    f"instastore serve did not start:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.1)


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path, timeout: float = 60.0) -> Iterator[int]:
    """``spawn`` a server, yield its port, and stop it with SIGTERM, checking that it
    exits cleanly."""
    proc, port = spawn(env, log, timeout)
    try:
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, f"instastore serve exited with {code}:\n{log.read_text()[-3000:]}"
