"""Several `instastore serve` hosts on 127.0.0.2, .3, ... behind the nginx of
deploy/nginx.conf (Debian's nginx-light), for the bench and the tests: the shipped file,
with its upstream servers and listener pointed at this run's hosts and port."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(
    env: dict[str, str], log: Path, timeout: float = 60.0, code: Path | None = None
) -> subprocess.Popen:
    """`instastore serve` with these INSTASTORE_* variables, once it accepts connections;
    ``code``: from that source tree (an export of another commit) instead of this one."""
    env = {**os.environ, **env}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    address = (env.get("INSTASTORE_HOST", "127.0.0.1"), int(env["INSTASTORE_PORT"]))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "instastore", "serve"],
            env=env,
            stdout=out,
            stderr=out,
            cwd=code,
        )
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(address, timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"instastore serve did not start:\n{tail}") from None
            time.sleep(0.1)


@dataclass
class Host:
    address: str
    port: int
    env: dict[str, str]
    log: Path
    code: Path | None = None  # another commit's source tree (see ``export``)
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://{self.address}:{self.port}"

    def start(self) -> None:
        env = {**self.env, "INSTASTORE_HOST": self.address, "INSTASTORE_PORT": str(self.port)}
        self.proc = spawn(env, self.log, code=self.code)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until its /readyz answers 200."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.base} is not ready:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self, how: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(how)
        code = self.proc.wait(timeout=60)
        self.proc = None
        return code


def bench_env(folder: Path) -> dict[str, str]:
    """The hosts' settings for a bench run: this shell's INSTASTORE_* (the cluster's,
    when set), else the embedded default in ``folder``; quiet logs, and sign-ups unbounded
    (a bench's users sign up at once from one address)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("INSTASTORE_")}
    env.setdefault("INSTASTORE_DATA_DIR", str(folder / "data"))
    env.setdefault("INSTASTORE_LOG_LEVEL", "WARNING")
    env.setdefault("INSTASTORE_SIGNUPS_PER_ADDRESS", "100000")
    return env


def export(commit: str, folder: Path) -> Path:
    """``commit``'s source tree in ``folder``, laid out as installed (``server/`` as
    ``instastore/server``, ``schema/`` as ``instastore/schema``), for ``code=``."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    for name in ("server", "schema"):
        shutil.copytree(folder / name, folder / "instastore" / name, dirs_exist_ok=True)
    return folder


def stop_nginx(prefix: Path, binary: str = NGINX) -> None:
    """Stop the nginx running from ``prefix`` (its nginx.conf there), and wait for it."""
    if not (prefix / "nginx.pid").exists():
        return
    subprocess.run(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-s", "stop"],
        capture_output=True,
    )
    deadline = time.monotonic() + 10
    while (prefix / "nginx.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


FAIL_TIMEOUT_S = 2.0  # deploy/nginx.conf's: how long nginx skips a host that failed


@dataclass
class Balancer:
    """nginx on 127.0.0.1:``port`` in front of ``hosts``; ``down()`` stops all of it."""

    prefix: Path
    port: int
    folder: Path  # the hosts' logs, and nginx's error log once it stopped
    hosts: list[Host] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def up(
        cls,
        env: dict[str, str],
        folder: Path,
        hosts: int = 3,
        extra: str = "",
        code: Path | None = None,
    ) -> Balancer:
        """Start ``hosts`` hosts with ``env``, then nginx (``extra``: more server blocks
        for its http block)."""
        # nginx's workers run as an unprivileged user: a folder of their own they can reach
        # (a test's tmp_path is private to root).
        prefix = Path(tempfile.mkdtemp(prefix="instastore-nginx-"))
        prefix.chmod(0o755)
        (prefix / "logs").mkdir()
        port = free_port()
        balancer = cls(prefix, port, folder)
        env = {**env, "INSTASTORE_TRUSTED_PROXIES": "127.0.0.1"}
        for i in range(hosts):
            balancer.hosts.append(
                Host(f"127.0.0.{2 + i}", free_port(), env, folder / f"host{2 + i}.log", code)
            )
        try:
            for host in balancer.hosts:
                host.start()
                host.wait_ready()
            conf = (ROOT / "deploy" / "nginx.conf").read_text()
            shipped = re.search(r"        server 127\.0\.0\.\d:8080 ([^;\n]*);", conf)
            assert shipped, "deploy/nginx.conf's upstream block changed shape"
            servers = "".join(
                f"        server {h.address}:{h.port} {shipped[1]};\n" for h in balancer.hosts
            )
            conf, count = re.subn(r"(        server 127\.0\.0\.\d:8080 [^\n]*\n)+", servers, conf)
            assert count == 1, "deploy/nginx.conf's upstream block changed shape"
            conf, count = re.subn(r"listen 127\.0\.0\.1:8000;", f"listen 127.0.0.1:{port};", conf)
            assert count == 1, "deploy/nginx.conf's listener changed shape"
            if extra:
                conf = conf.rstrip().removesuffix("}") + extra + "}\n"
            (prefix / "nginx.conf").write_text(conf)
            subprocess.run(
                [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                check=True,
                capture_output=True,
            )
        except BaseException:
            balancer.down()
            raise
        return balancer

    def down(self) -> None:
        stop_nginx(self.prefix)
        for host in self.hosts:
            if host.proc is not None and host.proc.poll() is None:
                host.proc.kill()
                host.proc.wait()
        if (self.prefix / "logs" / "error.log").exists():
            shutil.copy(self.prefix / "logs" / "error.log", self.folder / "nginx-error.log")
        shutil.rmtree(self.prefix, ignore_errors=True)
