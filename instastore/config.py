"""Settings, declared once.

Each setting is a field of ``Settings`` with its default and a one-line help. It is read
from the environment as ``INSTASTORE_<NAME>`` and from the command line as ``--<name>``
(flags win over the environment). Secrets are masked in ``repr`` and in logs. This module
owns parsing and validation; it never opens a connection.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instastore.errors import ConfigError
from instastore.limits import (
    PASSWORD_HASH_LANES,
    PASSWORD_HASH_MEMORY_KIB,
    PASSWORD_HASH_TIME_COST,
)

ENV_PREFIX = "INSTASTORE_"
# An http(s) origin: a host name, IPv4 or [IPv6] address, and a port (the service is served
# at the root of its origin, as the web page's own URLs are).
PUBLIC_URL = re.compile(r"https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?", re.ASCII)
CONSISTENCY_LEVELS = {"AUTO", "ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL"}


def setting(default: Any, help: str, *, secret: bool = False) -> Any:
    """Declare one setting: its default and the one line that documents it."""
    return field(default=default, metadata={"help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told. Empty Cassandra and HDFS settings mean the
    embedded default: SQLite metadata and blobs as local files under ``data_dir``."""

    host: str = setting("127.0.0.1", "Address the HTTP server binds to.")
    port: int = setting(8080, "TCP port the HTTP server listens on.")
    data_dir: Path = setting(
        Path("data"), "Folder of the embedded default (SQLite database and blob files)."
    )
    log_level: str = setting("INFO", "Logging level: DEBUG, INFO, WARNING or ERROR.")
    cassandra_hosts: str = setting(
        "", "Comma-separated Cassandra contact points; empty runs on the embedded default."
    )
    cassandra_port: int = setting(9042, "CQL native protocol port of the Cassandra nodes.")
    cassandra_keyspace: str = setting("instastore", "Keyspace holding instastore's tables.")
    cassandra_username: str = setting("", "Cassandra user name, if authentication is on.")
    cassandra_password: str = setting(
        "", "Cassandra password, if authentication is on.", secret=True
    )
    cassandra_local_dc: str = setting(
        "datacenter1", "Local data centre for routing and the keyspace's replication."
    )
    replication_factor: int = setting(
        1, "Replicas per row in the keyspace (1 on a laptop, 3 in production)."
    )
    cassandra_consistency: str = setting(
        "auto",
        "Consistency of reads and writes: auto (LOCAL_QUORUM above 1 replica, else LOCAL_ONE) or a "
        "level name.",
    )
    cassandra_request_timeout: float = setting(
        5.0,
        "Seconds a Cassandra read may take before it fails (writes have 12, or this if longer; "
        "migrations and batch jobs' scans 60).",
    )
    cassandra_speculative_delay: float = setting(
        0.25,
        "Seconds before an unanswered idempotent Cassandra request is also sent to another "
        "coordinator (at most two more).",
    )
    webhdfs_url: str = setting(
        "", "NameNode WebHDFS base URL, e.g. http://127.0.0.1:9870; empty stores blobs locally."
    )
    hdfs_user: str = setting("instastore", "User name sent to WebHDFS (user.name).")
    hdfs_root: str = setting("/instastore", "HDFS folder under which blobs are written.")
    hdfs_replication: int = setting(1, "HDFS replicas per blob file (3 in production).")
    hdfs_volume_dir: str = setting(
        "volumes", "Folder under hdfs_root holding sealed volumes (erasure-coded: hdfs_ec_policy)."
    )
    hdfs_ec_policy: str = setting(
        "auto",
        "Erasure coding of sealed volumes: auto (by live DataNodes: XOR-2-1-1024k from 3, "
        "RS-3-2-1024k from 5, RS-6-3-1024k from 9), a policy name, or replication.",
    )
    hdfs_block_reads: bool = setting(
        True,
        "Read sealed volumes straight from the DataNodes' data-transfer port with cached block "
        "locations (false: every read through WebHDFS).",
    )
    hdfs_datanodes: str = setting(
        "",
        "Comma-separated host:port of the DataNode HTTP servers WebHDFS may send reads and writes "
        "to; empty: the DataNodes the NameNode lists.",
    )
    worker_id: str = setting(
        "auto",
        "This process's number in every id it makes: auto leases a free one from the metadata "
        "store; a number (0-8191) is refused while another live process holds it.",
    )
    max_upload_bytes: int = setting(256 * 2**20, "Largest accepted upload in bytes (413 past it).")
    max_image_pixels: int = setting(
        50_000_000, "Largest accepted image or video frame in pixels (decompression-bomb guard)."
    )
    decode_threads: int = setting(
        2,
        "Uploads decoded at once per process (images and videos, for their renditions); each holds "
        "up to about 5 bytes a pixel of its image.",
    )
    decode_queue: int = setting(
        32, "Uploads per process that may wait for a decoding thread; past it 503 with Retry-After."
    )
    transcode_workers: int = setting(
        1,
        "Videos transcoded at once per host by `serve` (its first process, with --workers) or by "
        "`instastore transcode`, each in a child process on one core; 0: serve runs none.",
    )
    video_max_bitrate: int = setting(
        4_000_000, "Peak bitrate of a video's browser-safe rendition, in bits per second."
    )
    video_max_fps: int = setting(
        30, "Frame rate of a video's browser-safe rendition at most (faster video drops frames)."
    )
    max_video_seconds: int = setting(
        900, "Longest accepted video in seconds, checked from its container before decoding."
    )
    transcode_cpu_seconds: int = setting(
        600, "CPU seconds one transcode may use before the video is marked failed."
    )
    transcode_nice: int = setting(
        10,
        "Niceness of each transcoding process (0-19): behind the server's own work on a shared "
        "core. On a machine busy with other work, a high value can hold transcodes back a long "
        "time.",
    )
    transcode_wall_seconds: int = setting(
        1800, "Seconds one transcode may take before the video is marked failed."
    )
    max_title_chars: int = setting(200, "Longest accepted photo title, in characters.")
    max_comment_chars: int = setting(2200, "Longest accepted comment, in characters.")
    max_json_bytes: int = setting(64 * 1024, "Largest accepted JSON request body in bytes.")
    max_page_size: int = setting(100, "Most items one page of any list returns.")
    max_following: int = setting(
        7500,
        "Most accounts one user may follow (Instagram's cap); following or being approved past "
        "it is a 409. Every home timeline reads its reader's whole followee list: this bounds it.",
    )
    inbox_days: int = setting(
        30,
        "Days a photo stays in its followers' timeline inboxes (fan-out on write); older pages "
        "of a timeline merge the followees' own rows instead.",
    )
    fanout_max_followers: int = setting(
        10_000,
        "Accounts with more followers than this are not fanned out on upload: their photos are "
        "merged into each follower's timeline at read time instead (0: no fan-out at all).",
    )
    uploads_per_minute: int = setting(
        30, "Uploads one user may start per minute, on all hosts together (429 past it)."
    )
    comments_per_minute: int = setting(
        30, "Comments one user may post per minute, on all hosts together (429 past it)."
    )
    upload_claim_stale_seconds: int = setting(
        30,
        "Seconds after which an Idempotency-Key claim not renewed by its upload is taken over by a "
        "retry.",
    )
    session_days: int = setting(30, "Days a login token stays valid.")
    media_cache_bytes: int = setting(
        256 * 2**20, "Memory per process for hot thumbnails and feed renditions, in bytes (0: off)."
    )
    workers: int = setting(
        1,
        "Server processes sharing the port (each leases its own worker number; with a fixed "
        "worker_id, worker_id + its index).",
    )
    drain_seconds: float = setting(
        0.0,
        "Seconds after SIGTERM that /readyz answers 503 while new connections are still taken "
        "(for balancers that poll it; nginx needs none), before the listener closes.",
    )
    shutdown_timeout: float = setting(
        30.0, "Seconds requests in flight at SIGTERM get to finish once the listener is closed."
    )
    retention_days: int = setting(
        30, "Days a deleted photo can be restored before `instastore purge` removes it."
    )
    header_timeout: float = setting(
        10.0,
        "Seconds a new connection has to send its first request's headers (408 and close past it).",
    )
    idle_timeout: float = setting(
        30.0, "Seconds a kept-alive connection may wait for its next request before it is closed."
    )
    body_timeout: float = setting(
        60.0,
        "Seconds a request or response body may stall (no byte sent or taken) before 408 and "
        "close.",
    )
    max_connections: int = setting(
        1000,
        "Open client connections per process; past it 503 and close (lowered to fit "
        "RLIMIT_NOFILE).",
    )
    max_connections_per_address: int = setting(
        100, "Open connections from one client address per process; past it 503 and close."
    )
    trusted_proxies: str = setting(
        "",
        "Comma-separated addresses or networks (CIDR) of the proxies in front, e.g. nginx: only "
        "from them is X-Forwarded-For believed (the client address of per-address limits), and "
        "they are exempt from max_connections_per_address.",
    )
    public_url: str = setting(
        "",
        "The service's public origin, e.g. https://photos.example (no path): permalinks, "
        "Open Graph tags and oEmbed name it; empty: the request's own scheme and Host, and "
        "pages are then private to caches (a Host header is the client's to choose).",
    )
    signups_per_address: int = setting(
        20, "Sign-ups per minute from one client address, on all hosts together (429 past it)."
    )
    searches_per_address: int = setting(
        60,
        "Searches per minute from one client address without a token, on all hosts together "
        "(429 past it); signed-in users are not limited.",
    )
    search_postings: int = setting(
        5000,
        "Title-index postings one search request reads at most; past it the page ends with "
        "what was found and a cursor to go on (two common words that rarely meet).",
    )
    login_failures_per_address: int = setting(
        20, "Failed logins per minute from one client address, on all hosts together (429 past it)."
    )
    login_failures_per_account: int = setting(
        10,
        "Failed logins per minute on one account, on all hosts together, from addresses that "
        "never logged in to it (429 past it).",
    )
    password_hash_threads: int = setting(
        1,
        "Threads checking passwords at log-in (and hashing changed ones), apart from sign-ups' "
        "and from the pool uploads and media use.",
    )
    password_hash_queue: int = setting(
        8,
        "Log-ins and password changes that may wait for a hashing thread; past it 503 with "
        "Retry-After.",
    )
    signup_hash_threads: int = setting(
        1,
        "Threads hashing new accounts' passwords, apart from log-ins' (sign-ups never wait "
        "behind log-ins, nor log-ins behind sign-ups).",
    )
    signup_hash_queue: int = setting(
        2,
        "Sign-ups that may wait for a hashing thread; past it, or while any log-in waits for "
        "one, 503 with Retry-After.",
    )
    password_hash_time_cost: int = setting(
        PASSWORD_HASH_TIME_COST,
        "argon2id passes over memory per password hash (RFC 9106's second recommendation: 3 "
        "passes, 64 MiB, 4 lanes). Raising it or the memory re-hashes nothing: each hash keeps "
        "its own parameters and still verifies.",
    )
    password_hash_memory_kib: int = setting(
        PASSWORD_HASH_MEMORY_KIB,
        "argon2id memory per password hash, in KiB (at least 32: 8 per lane).",
    )
    metrics_port: int = setting(
        0,
        "Port of a separate listener for /metrics (on metrics_host); 0 serves /metrics on the "
        "public port, any other keeps it off that port.",
    )
    metrics_host: str = setting(
        "127.0.0.1", "Address the /metrics listener binds to, when metrics_port is set."
    )
    metrics_token: str = setting(
        "",
        "Bearer token /metrics asks for on the public port (metrics_port 0); empty: the public "
        "port refuses /metrics to everyone.",
        secret=True,
    )
    volume_target_bytes: int = setting(
        2**30,
        "Size `instastore pack` fills each new volume up to, in bytes (one blob may pass it).",
    )
    activity_days: int = setting(
        90,
        "Days an event (a like, comment, mention, follow, request or approval) stays in its "
        "user's activity inbox; the same action repeated within them notifies once.",
    )
    max_mentions: int = setting(
        10,
        "Most @names of one title or comment that notify their accounts (the first ones); "
        "the rest are plain text.",
    )
    reports_per_minute: int = setting(
        10,
        "Reports (of a photo, a comment or an account) one user may file per minute, on all "
        "hosts together (429 past it).",
    )

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be between 1 and 65535, not {self.port}")
        if self.replication_factor < 1 or self.hdfs_replication < 1:
            raise ConfigError("replication factors must be at least 1")
        fixed = self.fixed_worker_id  # raises unless "auto" or a number in range
        self.trusted_networks  # noqa: B018 (raises unless every entry parses)
        self.datanode_addresses  # noqa: B018 (raises unless every entry is host:port)
        self.public_base  # noqa: B018 (raises unless empty or an http(s) base URL)
        if self.media_cache_bytes < 0:
            raise ConfigError("media_cache_bytes must be 0 or more")
        if not 1 <= self.workers <= 64 or (fixed or 0) + self.workers - 1 > 8191:
            raise ConfigError("workers must be 1-64, and worker_id + workers - 1 at most 8191")
        for name in (
            "max_upload_bytes",
            "max_image_pixels",
            "decode_threads",
            "max_title_chars",
            "max_comment_chars",
            "max_json_bytes",
            "max_page_size",
            "max_following",
            "inbox_days",
            "uploads_per_minute",
            "comments_per_minute",
            "reports_per_minute",
            "session_days",
            "upload_claim_stale_seconds",
            "max_connections",
            "max_connections_per_address",
            "login_failures_per_address",
            "signups_per_address",
            "searches_per_address",
            "search_postings",
            "login_failures_per_account",
            "password_hash_threads",
            "signup_hash_threads",
            "password_hash_time_cost",
            "volume_target_bytes",
            "video_max_bitrate",
            "video_max_fps",
            "max_video_seconds",
            "transcode_cpu_seconds",
            "transcode_wall_seconds",
            "activity_days",
            "max_mentions",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if (
            not self.hdfs_volume_dir
            or "/" in self.hdfs_volume_dir
            or self.hdfs_volume_dir
            in {
                "blobs",  # the replicated blob folder
                ".",
                "..",
            }
        ):
            raise ConfigError(
                f"hdfs_volume_dir is one folder name under hdfs_root, not {self.hdfs_volume_dir!r}"
            )
        if not self.hdfs_ec_policy:
            raise ConfigError("hdfs_ec_policy must be auto, replication or a policy name")
        if not 0 <= self.metrics_port < 65536 or (
            self.metrics_port == self.port and self.metrics_host == self.host
        ):
            raise ConfigError(
                f"metrics_port must be 0 (serve /metrics on the public port) or a free port "
                f"other than port, not {self.metrics_port}"
            )
        if self.retention_days < 0:
            raise ConfigError(f"retention_days must be 0 or more, not {self.retention_days}")
        if self.password_hash_memory_kib < 8 * PASSWORD_HASH_LANES:
            raise ConfigError(
                f"password_hash_memory_kib must be at least {8 * PASSWORD_HASH_LANES} (8 KiB per "
                f"lane), not {self.password_hash_memory_kib}"
            )
        if self.transcode_workers < 0:
            raise ConfigError(f"transcode_workers must be 0 or more, not {self.transcode_workers}")
        if self.decode_queue < 0:
            raise ConfigError(f"decode_queue must be 0 or more, not {self.decode_queue}")
        for name in ("password_hash_queue", "signup_hash_queue"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, not {getattr(self, name)}")
        if not self.drain_seconds >= 0 or not self.shutdown_timeout >= 0:
            raise ConfigError("drain_seconds and shutdown_timeout must be 0 or more seconds")
        for name in ("header_timeout", "idle_timeout", "body_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be more than 0 seconds, not {getattr(self, name)}")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(
                f"log_level must be DEBUG, INFO, WARNING or ERROR, not {self.log_level!r}"
            )
        if self.cassandra_consistency.upper() not in CONSISTENCY_LEVELS:
            raise ConfigError(
                f"cassandra_consistency must be one of {', '.join(sorted(CONSISTENCY_LEVELS))}, "
                f"not {self.cassandra_consistency!r}"
            )
        if not 0 < self.cassandra_speculative_delay < self.cassandra_request_timeout:
            raise ConfigError(
                "cassandra_speculative_delay must be more than 0 seconds and less than "
                f"cassandra_request_timeout ({self.cassandra_request_timeout}), "
                f"not {self.cassandra_speculative_delay}"
            )
        if bool(self.cassandra_hosts) != bool(self.webhdfs_url):
            raise ConfigError(
                "cassandra_hosts and webhdfs_url go together: set both for the cluster "
                "adapter, or neither for the embedded default"
            )

    @property
    def datanode_addresses(self) -> frozenset[str] | None:
        """The DataNode HTTP addresses set in ``hdfs_datanodes``, or None when it is empty
        (then the NameNode's list is the set)."""
        entries = [e.strip() for e in self.hdfs_datanodes.split(",") if e.strip()]
        for entry in entries:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"hdfs_datanodes entries are host:port, not {entry!r}")
        return frozenset(entries) or None

    @property
    def public_base(self) -> str | None:
        """``public_url`` without its trailing slash, or None when it is empty (then each
        request's own scheme and Host stand in)."""
        url = self.public_url.strip()
        if not url:
            return None
        # SECURITY: the base is written into pages crawlers keep: a plain http(s) origin,
        # nothing that could close an attribute or carry a second URL.
        if not PUBLIC_URL.fullmatch(url):
            raise ConfigError(
                f"public_url must be an http or https origin (scheme, host and optional port; "
                f"no path, user, query or fragment), not {url!r}"
            )
        return url.rstrip("/")

    @property
    def fixed_worker_id(self) -> int | None:
        """The worker number set, or None for "auto" (lease a free one)."""
        if self.worker_id.strip().lower() == "auto":
            return None
        try:
            number = int(self.worker_id)
        except ValueError:
            raise ConfigError(
                f"worker_id must be auto or a number, not {self.worker_id!r}"
            ) from None
        if not 0 <= number <= 8191:
            raise ConfigError(f"worker_id must be auto or between 0 and 8191, not {number}")
        return number

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``trusted_proxies`` parsed (``ConfigError`` names an entry that is not one)."""
        networks = []
        for entry in (e.strip() for e in self.trusted_proxies.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ConfigError(
                    f"trusted_proxies: {entry!r} is not an address or a network (CIDR)"
                ) from None
        return tuple(networks)

    @property
    def uses_cluster(self) -> bool:
        """True when metadata lives in Cassandra and blobs in HDFS."""
        return bool(self.cassandra_hosts)

    @property
    def consistency(self) -> str:
        """The Cassandra consistency level name to use for reads and writes."""
        level = self.cassandra_consistency.upper()
        if level == "AUTO":
            return "LOCAL_QUORUM" if self.replication_factor > 1 else "LOCAL_ONE"
        return level

    @property
    def cassandra_contact_points(self) -> list[str]:
        return [h.strip() for h in self.cassandra_hosts.split(",") if h.strip()]

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = "'***'" if f.metadata["secret"] and value else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__

    @classmethod
    def from_sources(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Build settings from ``INSTASTORE_*`` variables, then ``overrides`` (parsed flags,
        ``None`` meaning "not given")."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f, raw)
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        return cls(**values)


def _boolean(raw: str) -> bool:
    """true/false, yes/no, on/off or 1/0, in any case."""
    word = raw.strip().lower()
    if word in ("true", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise ValueError(raw)


_boolean.__name__ = "true or false"


def _field_type(f: dataclasses.Field[Any]) -> Any:
    return {"int": int, "float": float, "Path": Path, "str": str, "bool": _boolean}[str(f.type)]


def _convert(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = _field_type(f)
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(
            f"{ENV_PREFIX}{f.name.upper()} must be {kind.__name__}, not {raw!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per setting, documented with its help and default."""
    group = parser.add_argument_group(
        "settings", f"each can also be set as an {ENV_PREFIX}<NAME> environment variable"
    )
    for f in dataclasses.fields(Settings):
        default = "" if f.metadata["secret"] else f" (default: {f.default!s})"
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_field_type(f),
            default=None,
            metavar=f.name.upper(),
            help=f.metadata["help"] + default,
        )


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(Settings)}
    return Settings.from_sources(environ, overrides)


def documented_settings() -> Sequence[tuple[str, str, Any]]:
    """(environment variable, help, default) of every setting, for docs and their test."""
    return [
        (ENV_PREFIX + f.name.upper(), f.metadata["help"], f.default)
        for f in dataclasses.fields(Settings)
    ]
