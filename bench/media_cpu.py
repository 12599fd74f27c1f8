"""``python -m bench.media_cpu --versus-commit C``: CPU milliseconds per image of the media
pipeline (``media.process``) on the 8 upload images of ``bench all``, this tree (A)
against commit C's ``instastore/media.py`` (B), in one process, image by image in turn
(A B in even rounds, B A in odd ones; the median of the per-round ratios, lower is
better here). CPU time in one process, not wall time in two: on a shared machine the
other load then moves both sides alike (two processes measured in turn gave 0.82-1.15
for rounds of the same two trees).

Writes ``bench/results/media-cpu-vs-<C>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from bench import report
from bench.__main__ import upload_images
from instastore import media

RESULTS = Path(__file__).parent / "results"
MAX_PIXELS = 50_000_000  # the default max_image_pixels


def media_of(commit: str, folder: Path) -> ModuleType:
    """``instastore/media.py`` of ``commit``, imported as a module of its own."""
    from bench.hosts import export

    source = export(commit, folder) / "instastore" / "media.py"
    spec = importlib.util.spec_from_file_location(f"media_{commit}", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def cpu_s(module: ModuleType, path: Path) -> float:
    started = time.process_time()
    module.process(path, module.TYPES["jpeg"], MAX_PIXELS)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.media_cpu", description=__doc__)
    parser.add_argument("--versus-commit", required=True)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-media-cpu-"))
    try:
        other = media_of(args.versus_commit, folder / "code")
        paths = []
        for i, data in enumerate(upload_images()):
            paths.append(folder / f"{i}.jpg")
            paths[-1].write_bytes(data)
        for path in paths:  # warm both
            cpu_s(media, path)
            cpu_s(other, path)
        a: list[float] = []
        b: list[float] = []
        for i in range(args.rounds):
            sides = (media, other) if i % 2 == 0 else (other, media)
            spent = {id(media): 0.0, id(other): 0.0}
            for path in paths:
                for module in sides:
                    spent[id(module)] += cpu_s(module, path)
            a.append(spent[id(media)] * 1000 / len(paths))
            b.append(spent[id(other)] * 1000 / len(paths))
            print(f"round {i + 1}: A {a[-1]:.1f} ms, B {b[-1]:.1f} ms, ratio {a[-1] / b[-1]:.3f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    body = {
        "machine": report.machine(),
        "settings": {
            "a": "CPU ms per image, media.process of this tree",
            "b": f"the same, media.py of {args.versus_commit}",
            "rounds": args.rounds,
            "images": len(paths),
        },
        "results": {
            "median_ratio": round(statistics.median(ratios), 3),
            "min_ratio": round(min(ratios), 3),
            "max_ratio": round(max(ratios), 3),
            "median_a_ms": round(statistics.median(a), 1),
            "median_b_ms": round(statistics.median(b), 1),
            "per_round": {"a": a, "b": b, "ratio": ratios},
        },
    }
    report.write(RESULTS, f"media-cpu-vs-{args.versus_commit}", body)
    print(json.dumps({k: v for k, v in body["results"].items() if k != "per_round"}, indent=2))


if __name__ == "__main__":
    main()
