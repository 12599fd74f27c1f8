"""The stores' part of blocks, reports, hidden items and the content blocklist: both
adapters, same behaviour."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from instastore.storage.ports import Report

from ..factories import new_id

AT = datetime(2026, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)


async def _follow_both_ways(stores, a: int, b: int) -> None:
    assert await stores.graph.follow(a, b, AT)
    assert await stores.graph.follow(b, a, AT)


# ---- blocks ------------------------------------------------------------------------------


async def test_a_block_ends_follows_and_requests_both_ways(stores):
    blocker, blocked, bystander = new_id(), new_id(), new_id()
    await _follow_both_ways(stores, blocker, blocked)
    await _follow_both_ways(stores, blocker, bystander)
    assert await stores.graph.add_follow_request(blocker, blocked, AT)
    assert await stores.graph.add_follow_request(blocked, blocker, AT)
    assert await stores.graph.add_follow_request(blocked, bystander, AT)
    assert (blocked, AT) in await stores.inbox.inbox_backfills(blocker)

    await stores.blocks.block(blocker, blocked, AT)

    assert not await stores.graph.is_following(blocker, blocked)
    assert not await stores.graph.is_following(blocked, blocker)
    assert not await stores.graph.has_follow_request(blocker, blocked)
    assert not await stores.graph.has_follow_request(blocked, blocker)
    assert blocked not in dict(await stores.inbox.inbox_backfills(blocker))
    assert blocker not in dict(await stores.inbox.inbox_backfills(blocked))
    # The counts follow the follows that ended, and nobody else's changed.
    assert await stores.graph.count_follows(blocker) == (1, 1)
    assert await stores.graph.count_follows(blocked) == (0, 0)
    assert await stores.graph.is_following(bystander, blocker)
    assert await stores.graph.has_follow_request(blocked, bystander)

    assert await stores.blocks.blockers_among(blocked, [blocker, bystander]) == {blocker}
    assert await stores.blocks.blocked_among(blocker, [blocked, bystander]) == {blocked}
    assert await stores.blocks.blockers_among(blocker, [blocked]) == set()  # one way only
    assert await stores.blocks.blocked_among(blocked, [blocker]) == set()


async def test_blocking_again_changes_nothing_and_unblocking_restores_no_follow(stores):
    blocker, blocked = new_id(), new_id()
    await _follow_both_ways(stores, blocker, blocked)
    await stores.blocks.block(blocker, blocked, AT)
    await stores.blocks.block(blocker, blocked, AT)  # a retry: the same state, counted once
    assert await stores.graph.count_follows(blocker) == (0, 0)
    assert await stores.blocks.blocked(blocker, None, 10) == [blocked]

    assert await stores.blocks.unblock(blocker, blocked) is True
    assert await stores.blocks.unblock(blocker, blocked) is False
    assert await stores.blocks.blocked(blocker, None, 10) == []
    assert await stores.blocks.blockers_among(blocked, [blocker]) == set()
    assert not await stores.graph.is_following(blocked, blocker)
    assert await stores.graph.count_follows(blocked) == (0, 0)


class Crash(BaseException):
    """A process killed where it was (not an error anything handles)."""


async def test_a_block_cut_short_after_any_step_hides_at_once_and_blocking_again_ends_it(
    stores, monkeypatch
):
    """A block is several writes on Cassandra (the block rows, then each follow and
    request ended) and one transaction on SQLite. Cut after its first write (the first
    unfollow never runs, as under kill -9): the block is already seen both ways, and the
    retry the client makes ends every follow and request, with the counts right."""
    blocker, blocked = new_id(), new_id()
    await _follow_both_ways(stores, blocker, blocked)
    assert await stores.graph.add_follow_request(blocked, blocker, AT)
    unfollow = type(stores.graph).unfollow

    async def killed(self, *args):
        raise Crash()

    monkeypatch.setattr(type(stores.graph), "unfollow", killed)
    try:
        await stores.blocks.block(blocker, blocked, AT)
        cut = False  # SQLite: one transaction, never an unfollow of its own
    except Crash:
        cut = True  # Cassandra: cut after the block rows
    assert cut == (stores.metadata.name != "sqlite")
    monkeypatch.setattr(type(stores.graph), "unfollow", unfollow)
    assert await stores.blocks.blockers_among(blocked, [blocker]) == {blocker}
    assert await stores.blocks.blocked_among(blocker, [blocked]) == {blocked}

    await stores.blocks.block(blocker, blocked, AT)  # the retry
    assert not await stores.graph.is_following(blocker, blocked)
    assert not await stores.graph.is_following(blocked, blocker)
    assert not await stores.graph.has_follow_request(blocked, blocker)
    assert await stores.graph.count_follows(blocker) == (0, 0)
    assert await stores.graph.count_follows(blocked) == (0, 0)


async def test_a_users_blocks_list_in_id_order_paged(stores):
    blocker = new_id()
    blocked = [new_id() for _ in range(5)]
    for other in reversed(blocked):
        await stores.blocks.block(blocker, other, AT)
    assert await stores.blocks.blocked(blocker, None, 3) == blocked[:3]
    assert await stores.blocks.blocked(blocker, blocked[2], 3) == blocked[3:]
    assert await stores.blocks.blocked(blocked[0], None, 3) == []
    assert await stores.blocks.blockers_among(blocked[4], []) == set()
    assert await stores.blocks.blocked_among(blocker, []) == set()
    assert await stores.blocks.blocked_among(blocker, [*blocked, new_id()]) == set(blocked)


# ---- reports and hidden items ----------------------------------------------------------


def _report(kind: str, item_id: int, reporter_id: int, reason: str = "spam") -> Report:
    return Report(kind, item_id, reporter_id, reason, f"{reason} note", AT)


async def test_reports_are_grouped_by_item_one_per_reporter_and_paged(stores):
    photo, account = new_id(), new_id()
    first, second = new_id(), new_id()
    made = [
        _report("photo", photo, second),
        _report("account", account, first, "harassment"),
        _report("photo", photo, first),
    ]
    for report in made:
        await stores.moderation.add_report(report)
    # The same reporter again: their report's reason is replaced, not added.
    again = _report("photo", photo, first, "nudity")
    await stores.moderation.add_report(again)
    mine = [r for r in await stores.moderation.reports(None, 1000) if r.item_id in (photo, account)]
    assert mine == sorted([made[0], made[1], again], key=lambda r: r.key)

    # Paged by key: every report once, in order.
    seen, after = [], None
    while True:
        page = await stores.moderation.reports(after, 2)
        seen += page
        if len(page) < 2:
            break
        after = page[-1].key
    assert [r.key for r in seen] == sorted(r.key for r in seen)
    assert {r.key for r in mine} <= {r.key for r in seen}

    await stores.moderation.resolve_reports("photo", photo)
    await stores.moderation.resolve_reports("photo", photo)  # idempotent
    left = [r for r in await stores.moderation.reports(None, 1000) if r.item_id in (photo, account)]
    assert left == [made[1]]


async def test_hidden_items_are_read_together_and_shown_again(stores):
    photo, comment, account, other = new_id(), new_id(), new_id(), new_id()
    await stores.moderation.set_hidden(photo, "photo", AT)
    await stores.moderation.set_hidden(photo, "photo", AT)  # idempotent
    await stores.moderation.set_hidden(comment, "comment", AT)
    await stores.moderation.set_hidden(account, "account", AT)
    assert await stores.moderation.hidden_among([photo, comment, account, other]) == {
        photo: "photo",
        comment: "comment",
        account: "account",
    }
    await stores.moderation.set_hidden(comment, "comment", None)
    await stores.moderation.set_hidden(other, "photo", None)  # never hidden: no error
    assert await stores.moderation.hidden_among([comment, photo]) == {photo: "photo"}
    assert await stores.moderation.hidden_among([]) == {}


async def test_the_content_blocklist(stores):
    digest = hashlib.sha256(new_id().to_bytes(8, "big")).hexdigest()
    assert await stores.moderation.blocklisted(digest) is False
    await stores.moderation.add_to_blocklist(digest, new_id(), AT)
    await stores.moderation.add_to_blocklist(digest, new_id(), AT)  # idempotent
    assert await stores.moderation.blocklisted(digest) is True
    assert await stores.moderation.blocklisted(hashlib.sha256(b"other").hexdigest()) is False
