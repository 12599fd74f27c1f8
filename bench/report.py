"""Reports: per-operation latency percentiles, throughput and errors, as JSON, a
Markdown summary and PNG plots (latency over time; latency distributions)."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def summarize(records: list, duration: float) -> dict:
    """Per operation; throughput is over the time the operation actually ran (first
    start to last end, at most ``duration``), so a finite workload is not diluted."""
    ops: dict[str, dict] = {}
    for op in sorted({r[0] for r in records}):
        mine = [r for r in records if r[0] == op]
        active = min(duration, max(r[1] + r[2] for r in mine) - min(r[1] for r in mine)) or duration
        ok = sorted(r[2] * 1000 for r in mine if isinstance(r[3], int) and r[3] < 400)
        errors: dict[str, int] = {}
        for r in mine:
            if not (isinstance(r[3], int) and r[3] < 400):
                errors[str(r[3])] = errors.get(str(r[3]), 0) + 1
        ops[op] = {
            "requests": len(mine),
            "ok": len(ok),
            "errors": errors,
            "throughput_per_s": round(len(ok) / active, 1),
            "p50_ms": round(percentile(ok, 50), 2),
            "p95_ms": round(percentile(ok, 95), 2),
            "p99_ms": round(percentile(ok, 99), 2),
        }
    return ops


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()


# The commit the measured code came from: read when the script starts, not when it writes
# its results (a run of an hour may end after other commits; a 100,000-photo run did).
COMMIT = _git("rev-parse", "--short", "HEAD")
CHANGED = bool(_git("status", "--porcelain", "--untracked-files=no"))


def machine() -> dict:
    commit = COMMIT + ("+uncommitted changes" if CHANGED else "")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    return {
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": commit,
    }


def write(out: Path, name: str, body: dict, records: list | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(body, indent=2) + "\n")
    lines = [f"# {name}", "", f"machine: `{json.dumps(body.get('machine', {}))}`", ""]
    if "settings" in body:
        lines += [f"settings: `{json.dumps(body['settings'])}`", ""]
    if "ops" in body:
        lines += [
            "| operation | requests | ok/s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---|---|---|---|---|---|",
        ]
        for op, s in body["ops"].items():
            lines.append(
                f"| {op} | {s['requests']} | {s['throughput_per_s']} | {s['p50_ms']} | "
                f"{s['p95_ms']} | {s['p99_ms']} | {s['errors'] or ''} |"
            )
        lines.append("")
    if "cpu" in body:
        lines += [f"CPU seconds: {json.dumps(body['cpu'])}", ""]
    for key in ("results", "targets"):
        if key in body:
            lines += [f"## {key}", "", "```json", json.dumps(body[key], indent=2), "```", ""]
    (out / f"{name}.md").write_text("\n".join(lines))
    if records:
        plot(out, name, records)


def plot(out: Path, name: str, records: list) -> None:
    t0 = min(r[1] for r in records)
    ops = sorted({r[0] for r in records})
    fig, (over_time, dist) = plt.subplots(1, 2, figsize=(13, 4.5))
    for op in ops:
        mine = [r for r in records if r[0] == op and isinstance(r[3], int) and r[3] < 400]
        if not mine:
            continue
        step = max(1, len(mine) // 4000)
        sample = mine[::step]
        over_time.scatter(
            [r[1] - t0 for r in sample], [r[2] * 1000 for r in sample], s=2, label=op, alpha=0.5
        )
        values = sorted(r[2] * 1000 for r in mine)
        dist.plot(values, [i / len(values) for i in range(len(values))], label=op)
    over_time.set(
        xlabel="seconds into the run",
        ylabel="latency (ms)",
        yscale="log",
        title="latency over time",
    )
    dist.set(
        xlabel="latency (ms)",
        ylabel="fraction of requests",
        xscale="log",
        title="latency distribution (CDF)",
    )
    over_time.legend(markerscale=4, fontsize=8)
    dist.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=90)
    plt.close(fig)
