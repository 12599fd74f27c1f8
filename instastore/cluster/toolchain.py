"""Java and Maven: find them, check them, and resolve the services' jars once.

Jars are cached under ``$INSTASTORE_CACHE_DIR`` (default ``~/.cache/instastore``), one
folder per product and version, marked complete only after Maven finished, so an
interrupted download is redone rather than half used.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from instastore.errors import ClusterError

log = logging.getLogger(__name__)

CASSANDRA_VERSION = "5.0.6"
HADOOP_VERSION = "3.5.0"  # the first Hadoop release with full Java 17 support
JAVA_MAJOR = 17  # Cassandra 5.0 runs on 11 or 17, Hadoop 3.5 wants 17: 17 serves both
MAVEN_TIMEOUT_S = 900  # a cold resolution is ~150 MB; slow mirrors take minutes


def cache_dir() -> Path:
    return Path(os.environ.get("INSTASTORE_CACHE_DIR") or Path.home() / ".cache" / "instastore")


def template(name: str) -> str:
    return resources.files("instastore.cluster").joinpath("templates", name).read_text()


def render(name: str, **values: object) -> str:
    """A template with each ``@KEY@`` replaced; a placeholder left over is a bug."""
    text = template(name)
    for key, value in values.items():
        text = text.replace(f"@{key.upper()}@", str(value))
    leftover = re.findall(r"@[A-Z_]+@", text)
    if leftover:
        raise ClusterError(f"template {name} has unfilled placeholders {sorted(set(leftover))}")
    return text


# For the JVMs of short-lived tools (nodetool, hdfs dfs/fsck/dfsadmin), never for the
# daemons: the client compiler only, the serial collector, no perf-data file. They start
# in 3.3-3.4 s instead of 4.3-4.8 s on the 2-core test machine (medians of 4, under load),
# and a test run starts about a hundred of them.
TOOL_JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData")


def jvm_options(name: str) -> list[str]:
    lines = (line.strip() for line in template(name).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def find_java() -> str:
    """The java executable, checked to be Java 17."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home, "bin", "java")) if java_home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise ClusterError(
            f"Java {JAVA_MAJOR} is required but no `java` was found (install "
            f"openjdk-{JAVA_MAJOR}-jdk-headless or set JAVA_HOME)"
        )
    out = subprocess.run([candidate, "-version"], capture_output=True, text=True, timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major != JAVA_MAJOR:
        raise ClusterError(
            f"Java {JAVA_MAJOR} is required but {candidate} is Java {major or 'unknown'} (set "
            f"JAVA_HOME to a Java {JAVA_MAJOR})"
        )
    return candidate


def find_maven() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise ClusterError(
            "Maven is required to fetch the Cassandra and HDFS jars but `mvn` was not found "
            "(install maven)"
        )
    return mvn


def resolve_jars(product: str, version: str) -> Path:
    """The folder of runtime jars of ``product`` ("cassandra" or "hadoop"), resolved with
    Maven on first use and cached."""
    lib = cache_dir() / "jars" / f"{product}-{version}"
    marker = lib / ".complete"
    if marker.exists():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with open(lib.parent / f".{product}-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `up`s at once resolve once
        if marker.exists():
            return lib
        mvn = find_maven()
        log.info("resolving %s %s jars with Maven into %s", product, version, lib)
        print(
            f"fetching {product} {version} jars with Maven (once; cached in {lib}) ...", flush=True
        )
        with tempfile.TemporaryDirectory(prefix=f"instastore-{product}-") as work:
            pom = Path(work, "pom.xml")
            pom.write_text(render(f"{product}-pom.xml", version=version))
            staging = Path(work, "lib")
            cmd = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S)
            except subprocess.TimeoutExpired as exc:
                raise ClusterError(
                    f"Maven did not resolve {product} {version} within {MAVEN_TIMEOUT_S} s"
                ) from exc
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
                raise ClusterError(
                    f"Maven failed to resolve {product} {version} (exit {done.returncode})", tail
                )
            if lib.exists():
                shutil.rmtree(lib)
            shutil.move(str(staging), lib)
        marker.write_text(f"{product} {version}\n")
    return lib


def classpath(*entries: Path | str) -> str:
    return ":".join(str(e) for e in entries)
