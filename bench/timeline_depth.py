"""``python -m bench.timeline_depth``: rows one "recent" timeline page reads, by depth.

The timeline merge (``instastore.merge``) runs over followees' UserPhoto rows held in
memory and read as the store port reads them; every read is one query to the store (one
followee's partition, at most a page of ids), so the figures here are the queries and
ids a page costs on either adapter, without the store's own time. A reader follows
``--followees`` accounts, each with ``--photos`` photos spread over ``--days`` days. Each
page asks 21 ids, as a page of 20 does (one more tells whether another page follows).

Measured: page 1 (no cursor), pages 2 and 10 (paging on from page 1), and a cursor
``--deep-days`` back; for each, the requests one page of 20 ids took (a page that runs
out of its budget ends short, or empty while a deep scan goes on) and the most rows and
ids one request read. With ``--before COMMIT`` the merge of that commit (called as it
was, with no budget) is measured on the same rows beside this tree's.
Writes ``bench/results/<--name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import report
from instastore import ids, merge
from instastore.limits import PAGE_READS

RESULTS = Path(__file__).parent / "results"
DAY_MS = 86_400_000
ASKED = 21  # ids a page of 20 asks of the merge


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.timeline_depth", description=__doc__)
    parser.add_argument("--followees", type=int, default=2000)
    parser.add_argument("--photos", type=int, default=50, help="photos per followee")
    parser.add_argument("--days", type=int, default=365, help="days the photos span")
    parser.add_argument("--deep-days", type=int, default=300, help="age of the deep cursor")
    parser.add_argument("--before", help="a commit whose merge to measure beside this tree's")
    parser.add_argument("--name", default="timeline-depth", help="results file name")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


class Rows:
    """Followees' rows in memory, read as ``PhotoStore.user_photo_ids`` reads them."""

    def __init__(self, by_followee: dict[int, list[int]]) -> None:
        self.by_followee = by_followee
        self.reads = 0
        self.ids = 0

    async def read(self, followee: int, before: int | None, n: int) -> list[int]:
        self.reads += 1
        rows = self.by_followee[followee]
        got = [i for i in rows if before is None or i < before][:n]
        self.ids += len(got)
        return got


def followees(count: int, photos: int, days: int, now_ms: int) -> dict[int, list[int]]:
    rng = random.Random(count * 7919 + photos)
    return {
        f: sorted(
            (
                ids.make_id(now_ms - rng.randrange(days * DAY_MS), rng.randrange(1024), n % 4096)
                for n in range(photos)
            ),
            reverse=True,
        )
        for f in range(1, count + 1)
    }


async def pages_now(
    hints: dict[int, int], rows: Rows, before: int | None, pages: int
) -> list[dict[str, Any]]:
    """``pages`` pages of 20 ids from ``before`` through this tree's merge: for each, the
    requests it took and the most rows and ids one request read."""
    at: merge.Position | None = merge.Position(before)
    measured = []
    for _ in range(pages):
        got: list[int] = []
        requests, most_rows, most_ids = 0, 0, 0
        while at is not None and len(got) < 20:
            reads, read_ids = rows.reads, rows.ids
            merged = await merge.merge_timeline(hints, rows.read, at, ASKED - len(got))
            requests += 1
            most_rows = max(most_rows, rows.reads - reads)
            most_ids = max(most_ids, rows.ids - read_ids)
            got += merged.ids
            at = merge.Position(got[19]) if len(got) > 20 else merged.after
        measured.append(
            {"requests": requests, "rows_most": most_rows, "ids_most": most_ids, "ids": got[:20]}
        )
    return measured


async def pages_before(
    old: Any, hints: dict[int, int], rows: Rows, before: int | None, pages: int
) -> list[dict[str, Any]]:
    """The same through an older merge: one call a page, ``before`` an id."""
    measured = []
    for _ in range(pages):
        reads, read_ids = rows.reads, rows.ids
        got = await old.merge_timeline(hints, rows.read, before, ASKED)
        measured.append(
            {
                "requests": 1,
                "rows_most": rows.reads - reads,
                "ids_most": rows.ids - read_ids,
                "ids": got[:20],
            }
        )
        before = got[19] if len(got) > 20 else None
    return measured


def old_merge(commit: str) -> Any:
    source = subprocess.run(
        ["git", "show", f"{commit}:instastore/merge.py"], check=True, capture_output=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "merge_before.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("merge_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    now_ms = ids.EPOCH_MS + (args.days + 30) * DAY_MS
    by_followee = followees(args.followees, args.photos, args.days, now_ms)
    hints = {f: photos[0] for f, photos in by_followee.items()}
    deep = ids.make_id(now_ms - args.deep_days * DAY_MS, 0, 0)
    runs: dict[str, Any] = {"this tree": pages_now}
    if args.before:
        old = old_merge(args.before)
        runs[args.before] = lambda h, r, b, p: pages_before(old, h, r, b, p)
    result: dict[str, Any] = {
        "followees": args.followees,
        "photos_per_followee": args.photos,
        "days": args.days,
        "deep_cursor_days": args.deep_days,
        "page_reads_budget": PAGE_READS,
    }
    for label, run in runs.items():
        shallow = await run(hints, Rows(by_followee), None, 10)
        deep_pages = await run(hints, Rows(by_followee), deep, 3)
        rows = {
            "page 1": shallow[0],
            "page 2": shallow[1],
            "page 10": shallow[9],
            f"{args.deep_days} days back, page 1": deep_pages[0],
            f"{args.deep_days} days back, page 3": deep_pages[2],
        }
        result[label] = {
            k: {m: v for m, v in page.items() if m != "ids"} for k, page in rows.items()
        }
        result[label]["same_ids"] = [page["ids"] for page in shallow + deep_pages]
    if args.before:
        result["same_pages_as_before"] = result["this tree"].pop("same_ids") == result[
            args.before
        ].pop("same_ids")
    else:
        result["this tree"].pop("same_ids")
    return result


def markdown_table(result: dict[str, Any], labels: list[str]) -> str:
    lines = [
        "| page | "
        + " | ".join(f"{label}: requests, most rows / ids a request" for label in labels)
        + " |"
    ]
    lines.append("|---" * (len(labels) + 1) + "|")
    for page in result[labels[0]]:
        cells = [
            "{requests}, {rows_most} / {ids_most}".format(**result[label][page]) for label in labels
        ]
        lines.append(f"| {page} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = parse()
    result = asyncio.run(measure(args))
    labels = [label for label in ("this tree", args.before) if label]
    report.write(args.out, args.name, {"machine": report.machine(), "result": result})
    table = markdown_table(result, labels[::-1])
    md = args.out / f"{args.name}.md"
    md.write_text(md.read_text() + "\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
