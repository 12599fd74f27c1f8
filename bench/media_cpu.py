"""``python -m bench.media_cpu --versus-commit C``: CPU milliseconds per image of the media
pipeline (``media.process``) on the 8 upload images of ``bench all``, this tree (A)
against an export of commit C (B), each side a fresh process, in alternating rounds
(``bench/abba.py``: the median of the per-round ratios, lower is better here). CPU time,
not wall time: on a shared machine it moves less with the other load.

Writes ``bench/results/media-cpu-vs-<C>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import abba, report

RESULTS = Path(__file__).parent / "results"
REPEATS = 2  # passes over the 8 images per measurement, after one to warm up

ONE_SIDE = """
import sys, tempfile, time
from pathlib import Path
from bench.__main__ import upload_images
from instastore import media
folder = Path(tempfile.mkdtemp())
paths = []
for i, data in enumerate(upload_images()):
    path = folder / f"{i}.jpg"
    path.write_bytes(data)
    paths.append(path)
for path in paths:
    media.process(path, media.TYPES["jpeg"], 50_000_000)
started = time.process_time()
for _ in range(int(sys.argv[1])):
    for path in paths:
        media.process(path, media.TYPES["jpeg"], 50_000_000)
print((time.process_time() - started) * 1000 / (int(sys.argv[1]) * len(paths)))
"""


def cpu_ms(code: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", ONE_SIDE, str(REPEATS)],
        env={**os.environ, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.media_cpu", description=__doc__)
    parser.add_argument("--versus-commit", required=True)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    from bench.hosts import export

    here = Path(__file__).resolve().parent.parent
    other = export(args.versus_commit, Path(tempfile.mkdtemp(prefix="bench-media-cpu-")))
    started = time.time()
    try:

        async def side_a(i: int) -> float:
            return await asyncio.to_thread(cpu_ms, here)

        async def side_b(i: int) -> float:
            return await asyncio.to_thread(cpu_ms, other)

        rounds = asyncio.run(abba.alternate(side_a, side_b, args.rounds))
    finally:
        shutil.rmtree(other, ignore_errors=True)
    body = {
        "machine": report.machine(),
        "settings": {
            "a": "CPU ms per image, media.process of this tree",
            "b": f"the same at {args.versus_commit}",
            "rounds": args.rounds,
            "passes": REPEATS,
            "seconds": round(time.time() - started, 1),
        },
        "results": rounds.summary(),
    }
    report.write(RESULTS, f"media-cpu-vs-{args.versus_commit}", body)
    print(json.dumps({k: v for k, v in body["results"].items() if k != "per_round"}, indent=2))


if __name__ == "__main__":
    main()
