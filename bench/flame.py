"""``python -m bench.flame RAW [--title T] [--top N]``: py-spy's raw (collapsed) stacks
of one server worker as tables: where the event loop's samples go by part of the request
(aiohttp, the middlewares, metrics, the caches, the store, response building, the media
handler), then by function, inclusive and self. Record them with
``py-spy record -p PID -f raw -o RAW`` while a load runs; the raw file is the flame graph's
data (flamegraph.pl or speedscope draw it).

A stack is the event loop's when it passes through the worker's loop
(``run_until_complete``/``_serve_one``); the others are the store's and the executor's
threads.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")

# The part of a request a frame belongs to, by the first rule that matches a stack's
# frames from the leaf up: a sample counts for the innermost part it is in.
PARTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("metrics (prometheus-client)", re.compile(r"prometheus_client/")),
    ("store (sqlite, files, cassandra)", re.compile(r"instastore/storage/|sqlite3|cassandra/")),
    ("caches (records, owners, media bytes)", re.compile(r"instastore/hotcache\.py")),
    ("authorization (viewing, social)", re.compile(r"instastore/(viewing|social|photos)\.py")),
    ("socket writes (aiohttp's writer)", re.compile(r"\(aiohttp/http_writer\.py")),
    ("response building (aiohttp web_response)", re.compile(r"\(aiohttp/web_response\.py")),
    ("media handler (server/handlers/media.py)", re.compile(r"server/handlers/media\.py")),
    ("middlewares (server/*)", re.compile(r"server/(middleware|web|problems|guard)\.py")),
    ("aiohttp request handling and routing", re.compile(r"\(aiohttp/")),
)


def frames(stack: str) -> list[str]:
    return stack.split(";")


def is_loop(stack: list[str]) -> bool:
    return any("_serve_one" in f or "run_until_complete" in f for f in stack)


def load(path: Path) -> list[tuple[list[str], int]]:
    samples = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples.append((frames(stack), int(count)))
    return samples


def part_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, pattern in PARTS:
            if pattern.search(frame):
                return name
    return "other (the loop itself, uvloop, asyncio)"


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    file = re.sub(
        r"^.*?(aiohttp|instastore|prometheus_client|multidict|yarl|asyncio)/", r"\1/", match["file"]
    )
    return f"`{match['func']} ({file})`"


def tables(samples: list[tuple[list[str], int]], top: int) -> str:
    total = sum(n for _, n in samples)
    loop = [(s, n) for s, n in samples if is_loop(s)]
    on_loop = sum(n for _, n in loop) or 1
    parts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, n in loop:
        parts[part_of(stack)] += n
        for frame in {short(f) for f in stack}:
            inclusive[frame] += n
        own[short(stack[-1])] += n
    out = [
        f"{total:,} samples, {on_loop:,} of them on the event loop's thread "
        f"({100 * on_loop / max(1, total):.1f}%; the rest: the store's and executor threads).",
        "",
        "Event loop, by part of the request (each sample counted once, in the innermost part):",
        "",
        "| share | part |",
        "|---|---|",
        *(f"| {100 * n / on_loop:.1f}% | {name} |" for name, n in parts.most_common()),
        "",
        "Event loop, by function, inclusive:",
        "",
        "| share | function (file) |",
        "|---|---|",
        *(
            f"| {100 * n / on_loop:.1f}% | {name} |"
            for name, n in inclusive.most_common(top + 6)[6:]  # past the loop's own frames
        ),
        "",
        "Event loop, by function, self time:",
        "",
        "| share | function (file) |",
        "|---|---|",
        *(f"| {100 * n / on_loop:.1f}% | {name} |" for name, n in own.most_common(top)),
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flame", description=__doc__)
    parser.add_argument("raw", type=Path)
    parser.add_argument("--title", default="")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    body = tables(load(args.raw), args.top)
    print(f"# {args.title}\n\n{body}" if args.title else body)


if __name__ == "__main__":
    main()
