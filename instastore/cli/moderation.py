"""``instastore moderation list|hide|restore``: work through users' reports
(``instastore.moderation``). ``list`` prints the open reports a page at a time, grouped
by item, with the ``--after`` that goes on; ``hide`` takes an item down (404 to all but
its owner; ``--blocklist`` also refuses a photo's bytes at upload) and ``restore`` shows it
again, each closing the item's reports. Progress goes to stdout."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from instastore import config
from instastore.errors import InvalidInput

if TYPE_CHECKING:
    from instastore.config import Settings
    from instastore.ids import IdGenerator
    from instastore.storage.ports import ReportKey, Stores

KINDS = ("photo", "comment", "account")
LIST_PAGE = 50  # reports `moderation list` prints by default


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser("moderation", help="work through reports: list, hide, restore")
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the open reports, grouped by item, a page at a time")
    listing.add_argument(
        "--limit", type=int, default=LIST_PAGE, help=f"reports per page (default {LIST_PAGE})"
    )
    listing.add_argument(
        "--after", default=None, help="go on after this report (the `next:` of the last page)"
    )
    listing.add_argument("--all", action="store_true", help="every page, not only the first")
    listing.set_defaults(run=_list)
    hide = actions.add_parser("hide", help="take an item down: 404 to everyone but its owner")
    restore = actions.add_parser("restore", help="show a hidden item again")
    for parser_ in (hide, restore):
        parser_.add_argument("kind", choices=KINDS)
        parser_.add_argument("item_id", type=int, help="the item's id, as `list` prints it")
    hide.add_argument(
        "--blocklist",
        action="store_true",
        help="also refuse the photo's original bytes at upload (451) from now on",
    )
    hide.set_defaults(run=_hide)
    restore.set_defaults(run=_restore)
    for parser_ in (listing, hide, restore):
        config.add_arguments(parser_)


def _after(raw: str | None) -> ReportKey | None:
    """``kind:item_id:reporter_id``, as ``list`` prints it after ``next:``."""
    if raw is None:
        return None
    parts = raw.split(":")
    if len(parts) != 3 or parts[0] not in KINDS or not all(p.isdigit() for p in parts[1:]):
        raise InvalidInput(f"--after must be kind:item_id:reporter_id, not {raw!r}")
    return (parts[0], int(parts[1]), int(parts[2]))


def _list(args: argparse.Namespace) -> None:
    from instastore.cli.jobs import _with_stores

    if args.limit < 1:
        raise InvalidInput("--limit must be at least 1")
    after = _after(args.after)

    async def job(stores: Stores, settings: Settings, _: IdGenerator) -> None:
        from instastore.moderation import Moderation

        moderation = Moderation(stores.moderation, stores.photos, stores.accounts)
        listed, at = 0, after
        while True:
            page = await moderation.open_reports(at, args.limit + 1)
            more = len(page) > args.limit
            for report in page[: args.limit]:
                note = f" {report.note!r}" if report.note else ""
                print(
                    f"{report.kind} {report.item_id} reporter={report.reporter_id} "
                    f"{report.reason} {report.created_at.isoformat()}{note}"
                )
            listed += min(len(page), args.limit)
            if not more:
                print(f"moderation: {listed} report(s) listed, no more")
                return
            last = page[args.limit - 1]
            at = last.key
            if not args.all:
                print(f"moderation: {listed} report(s) listed")
                print(f"next: --after {last.kind}:{last.item_id}:{last.reporter_id}")
                return
            print(f"moderation: {listed} report(s) listed so far", flush=True)

    _with_stores(args, job)


def _hide(args: argparse.Namespace) -> None:
    from instastore.cli.jobs import _with_stores

    async def job(stores: Stores, settings: Settings, _: IdGenerator) -> None:
        from instastore.moderation import Moderation

        moderation = Moderation(stores.moderation, stores.photos, stores.accounts)
        digest = await moderation.hide(args.kind, args.item_id, args.blocklist)
        print(f"moderation: {args.kind} {args.item_id} hidden; its reports closed")
        if digest is not None:
            print(f"moderation: uploads of sha256 {digest} are refused from now on")

    _with_stores(args, job)


def _restore(args: argparse.Namespace) -> None:
    from instastore.cli.jobs import _with_stores

    async def job(stores: Stores, settings: Settings, _: IdGenerator) -> None:
        from instastore.moderation import Moderation

        await Moderation(stores.moderation, stores.photos, stores.accounts).restore(
            args.kind, args.item_id
        )
        print(f"moderation: {args.kind} {args.item_id} shown again; its reports closed")

    _with_stores(args, job)
