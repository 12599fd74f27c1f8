"""`instastore moderation list|hide|restore` as an operator runs them: the open reports
a page at a time, a takedown (with its blocklist) and a restore, each closing the item's
reports; and the mistakes an operator can make."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime

from instastore.config import Settings
from instastore.storage import open_stores
from instastore.storage.ports import Report

from ..factories import make_photo, make_user, new_id
from ..runbook import run_block

AT = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


def moderation(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "instastore", "moderation", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "INSTASTORE_DATA_DIR": str(settings.data_dir)},
    )


async def _seed(settings: Settings) -> tuple[int, int, list[int]]:
    stores = await open_stores(settings)
    try:
        owner = make_user()
        await stores.accounts.create_user(owner)
        photo = make_photo(owner.id, "reported")
        await stores.photos.save_photo(photo, [])
        reporters = sorted(new_id() for _ in range(3))
        for reporter in reporters:
            await stores.moderation.add_report(
                Report("photo", photo.id, reporter, "spam", "so many ads", AT)
            )
        await stores.moderation.add_report(
            Report("account", owner.id, reporters[0], "hate", "", AT)
        )
        return photo.id, owner.id, reporters
    finally:
        await stores.close()


async def _state(settings: Settings, photo_id: int) -> tuple[dict[int, str], bool, int]:
    stores = await open_stores(settings)
    try:
        photo = await stores.photos.get_photo(photo_id)
        return (
            await stores.moderation.hidden_among([photo_id]),
            await stores.moderation.blocklisted(photo.sha256),
            len(await stores.moderation.reports(None, 100)),
        )
    finally:
        await stores.close()


def test_an_operator_lists_hides_and_restores(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    photo_id, owner_id, reporters = asyncio.run(_seed(settings))

    first = moderation(settings, "list", "--limit", "2")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    # Grouped by item: the account's report, then the photo's, a page of two.
    assert lines[0].startswith(f"account {owner_id} reporter={reporters[0]} hate ")
    assert lines[1].startswith(f"photo {photo_id} reporter={reporters[0]} spam ")
    assert lines[1].endswith("'so many ads'")
    assert lines[2] == "moderation: 2 report(s) listed"
    assert lines[3] == f"next: --after photo:{photo_id}:{reporters[0]}"
    rest = moderation(settings, "list", "--limit", "2", "--after", lines[3].split()[-1])
    assert rest.returncode == 0, rest.stderr
    assert [line.split()[2] for line in rest.stdout.splitlines()[:2]] == [
        f"reporter={r}" for r in reporters[1:]
    ]
    assert rest.stdout.splitlines()[-1] == "moderation: 2 report(s) listed, no more"
    every = moderation(settings, "list", "--limit", "1", "--all")
    assert every.stdout.splitlines()[-1] == "moderation: 4 report(s) listed, no more"

    hidden = moderation(settings, "hide", "photo", str(photo_id), "--blocklist")
    assert hidden.returncode == 0, hidden.stderr
    assert f"photo {photo_id} hidden; its reports closed" in hidden.stdout
    assert "are refused from now on" in hidden.stdout
    assert asyncio.run(_state(settings, photo_id)) == ({photo_id: "photo"}, True, 1)
    again = moderation(settings, "hide", "photo", str(photo_id))  # idempotent
    assert again.returncode == 0, again.stderr

    restored = moderation(settings, "restore", "photo", str(photo_id))
    assert restored.returncode == 0, restored.stderr
    # Shown again; the blocklist keeps the bytes' hash; the account's report stays open.
    assert asyncio.run(_state(settings, photo_id)) == ({}, True, 1)


def test_an_operators_mistakes_are_refused(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    photo_id, owner_id, _ = asyncio.run(_seed(settings))
    for args, words in [
        (("list", "--after", "photo:12"), "--after must be kind:item_id:reporter_id"),
        (("list", "--limit", "0"), "--limit must be at least 1"),
        (("hide", "account", str(owner_id), "--blocklist"), "--blocklist takes a photo"),
        (("hide", "photo", str(new_id())), "no photo"),
        (("restore", "account", str(new_id())), "no account"),
    ]:
        done = moderation(settings, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert words in done.stderr, (args, done.stderr)
    bad_kind = moderation(settings, "hide", "album", "1")
    assert bad_kind.returncode == 2 and "invalid choice" in bad_kind.stderr
    assert asyncio.run(_state(settings, photo_id)) == ({}, False, 4)  # nothing changed


def test_the_runbooks_moderation_block(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    photo_id, owner_id, _ = asyncio.run(_seed(settings))
    done = run_block("moderation", {"INSTASTORE_DATA_DIR": str(settings.data_dir)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:4]] == [
        ["account", str(owner_id)],
        *[["photo", str(photo_id)]] * 3,
    ]
    assert lines[-1] == "moderation: 4 report(s) listed, no more"
