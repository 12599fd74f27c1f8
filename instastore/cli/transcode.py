"""``instastore transcode``: run the transcode queue (``instastore.video.queue``) in this
process until it is empty (or, with ``--watch``, until interrupted); ``--backfill`` first
queues every video stored without a browser-safe rendition. Progress goes to stdout."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from instastore import config

if TYPE_CHECKING:
    from instastore.config import Settings
    from instastore.ids import IdGenerator
    from instastore.storage.ports import Stores

PROGRESS_EVERY_S = 5.0  # seconds between progress lines while jobs run


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "transcode", help="make the browser-safe renditions of queued videos"
    )
    config.add_arguments(command)
    command.add_argument(
        "--backfill",
        action="store_true",
        help="first queue every video stored before the transcode queue (a full scan)",
    )
    command.add_argument(
        "--watch", action="store_true", help="keep taking new jobs until interrupted"
    )
    command.set_defaults(run=_transcode)


def _transcode(args: argparse.Namespace) -> None:
    from instastore.cli.jobs import _with_stores

    async def job(stores: Stores, settings: Settings, _: IdGenerator) -> None:
        import asyncio

        from instastore import leases
        from instastore.video.queue import Transcoder, backfill

        if args.backfill:
            await backfill(stores.photos, stores.transcodes, stores.blobs, settings)
        worker = Transcoder(
            stores.transcodes,
            stores.photos,
            stores.blobs,
            settings,
            leases.holder_name("transcode"),
        )
        running = asyncio.create_task(worker.run(until_empty=not args.watch))
        while not running.done():
            await asyncio.wait([running], timeout=PROGRESS_EVERY_S)
            left = len(await stores.transcodes.transcode_jobs(-1, 10_000))
            print(f"transcode: {worker.done} job(s) done, {left} queued", flush=True)
        await running

    _with_stores(args, job)
