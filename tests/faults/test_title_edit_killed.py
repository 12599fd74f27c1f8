"""kill -9 of a real `instastore serve` while title edits are under way (embedded
default): killed in the middle of one edit, readers see the photo under its record's
title only; killed while several edits of the photo run at once (a removal of one may
take rows another is about to need, until that one is retried), one more edit leaves
exactly its own rows in the title and tag indexes, none of any title before it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from instastore import search
from instastore.tags import title_tags

from .. import samples
from ..factories import sign_up, upload_form
from ..serving import spawn

KILLS = 3  # servers killed, each while edits are in flight


def index_rows(db: Path, photo_id: int) -> tuple[set[str], set[str]]:
    """The photo's title-index terms and tags, as the embedded store holds them."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        terms = {
            r[0]
            for r in conn.execute("SELECT term FROM title_terms WHERE photo_id = ?", (photo_id,))
        }
        tags = {
            r[0] for r in conn.execute("SELECT tag FROM tag_photos WHERE photo_id = ?", (photo_id,))
        }
    return terms, tags


def title(n: int) -> str:
    return f"edit{n} word{n % 7} #tag{n} #all"


async def ids_of(http: aiohttp.ClientSession, url: str, **params: str) -> list[str]:
    resp = await http.get(url, params=params)
    assert resp.status == 200, await resp.text()
    return [p["id"] for p in (await resp.json())["items"]]


async def first_photo(env: dict, log: Path) -> tuple[dict, str]:
    proc, port = await asyncio.to_thread(spawn, env, log)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            _, auth = await sign_up(http)
            form = upload_form(samples.image(size=(32, 32)), "first #first")
            resp = await http.post("/v1/photos", data=form, headers=auth)
            assert resp.status == 201, await resp.text()
            return auth, (await resp.json())["id"]
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait, 30)


async def kill_while_editing(env: dict, log: Path, auth: dict, photo_id: str, editors: int) -> int:
    """Start a server, edit the photo's title from ``editors`` clients at once, each
    edit after the last, and SIGKILL the server a fraction of a second in; the edits sent."""
    edits = 0
    proc, port = await asyncio.to_thread(spawn, env, log)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            sent, target = asyncio.Event(), random.randint(5, 12)

            async def edit_forever() -> None:
                nonlocal edits
                while True:
                    edits += 1
                    if edits >= target:
                        sent.set()
                    body = {"title": title(edits + 1000 * editors)}
                    await http.patch(f"/v1/photos/{photo_id}", json=body, headers=auth)

            tasks = [asyncio.create_task(edit_forever()) for _ in range(editors)]
            # Killed after a few edits were sent, however slow the machine, and a moment
            # into the next ones (a time alone came before the first under load).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sent.wait(), 60)
            await asyncio.sleep(random.uniform(0, 0.05))
            proc.send_signal(signal.SIGKILL)
            for task in tasks:
                with contextlib.suppress(aiohttp.ClientError):
                    await task
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait, 30)
    return edits


@pytest.mark.timeout(300)
async def test_kill_9_mid_edit_leaves_readers_the_records_title(tmp_path):
    env = {"INSTASTORE_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "serve.log"
    auth, photo_id = await first_photo(env, log)
    for _ in range(KILLS):
        edits = await kill_while_editing(env, log, auth, photo_id, editors=1)
        assert edits > 3, "the kill came before any edit ran"
        proc, port = await asyncio.to_thread(spawn, env, log)
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                resp = await http.get(f"/v1/photos/{photo_id}", headers=auth)
                now = (await resp.json())["title"]
                for n in range(1000, 1000 + edits + 1):
                    shown = await ids_of(http, f"/v1/tags/tag{n}/photos")
                    assert shown == ([photo_id] if f"#tag{n} " in now else []), (n, now)
                    shown = await ids_of(http, "/v1/search/photos", q=f"edit{n}")
                    assert shown == ([photo_id] if now.startswith(f"edit{n} ") else []), (n, now)
                assert await ids_of(http, "/v1/tags/all/photos") == (
                    [photo_id] if "#all" in now else []
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()[-3000:]


@pytest.mark.timeout(300)
async def test_kill_9_mid_edits_at_once_then_one_edit_leaves_exactly_its_rows(tmp_path):
    data_dir = tmp_path / "data"
    env = {"INSTASTORE_DATA_DIR": str(data_dir)}
    log = tmp_path / "serve.log"
    auth, photo_id = await first_photo(env, log)
    for _ in range(KILLS):
        assert await kill_while_editing(env, log, auth, photo_id, editors=4) > 4
    last = "the end #done"
    proc, port = await asyncio.to_thread(spawn, env, log)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            resp = await http.patch(f"/v1/photos/{photo_id}", json={"title": last}, headers=auth)
            assert resp.status == 200, await resp.text()
            assert await ids_of(http, "/v1/tags/done/photos") == [photo_id]
            assert await ids_of(http, "/v1/tags/all/photos") == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()[-3000:]
    assert index_rows(data_dir / "metadata.sqlite3", int(photo_id)) == (
        set(search.terms(last)),
        set(title_tags(last)),
    )
