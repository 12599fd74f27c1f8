"""The metadata store contract: both adapters, same behaviour."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from instastore import ids, search
from instastore.errors import Conflict
from instastore.model import PhotoCounts, User, Visibility

from ..factories import make_photo, make_user, new_id

DAY_MS = 24 * 3600 * 1000


# ---- users ---------------------------------------------------------------------------


async def test_user_round_trip_by_id_and_name(stores):
    user = make_user()
    await stores.accounts.create_user(user)
    assert await stores.accounts.get_user(user.id) == user
    assert await stores.accounts.get_user_by_name(user.username) == user
    assert await stores.accounts.get_user(new_id()) is None
    assert await stores.accounts.get_user_by_name("nobody-" + uuid.uuid4().hex) is None


async def test_a_username_is_taken_once(stores):
    first = make_user()
    await stores.accounts.create_user(first)
    with pytest.raises(Conflict, match="taken"):
        await stores.accounts.create_user(make_user(first.username))
    assert (await stores.accounts.get_user_by_name(first.username)).id == first.id


async def test_concurrent_claims_of_one_name_let_exactly_one_win(stores):
    name = f"race{uuid.uuid4().hex[:10]}"
    contenders = [make_user(name) for _ in range(4)]
    results = await asyncio.gather(
        *(stores.accounts.create_user(u) for u in contenders), return_exceptions=True
    )
    winners = [u for u, r in zip(contenders, results, strict=True) if r is None]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    assert (await stores.accounts.get_user_by_name(name)).id == winners[0].id


async def test_update_user(stores):
    user = make_user()
    await stores.accounts.create_user(user)
    changed = User(user.id, user.username, user.password_hash, "Grace", True, user.created_at)
    await stores.accounts.update_user(changed)
    assert await stores.accounts.get_user(user.id) == changed


async def test_a_profile_edit_and_a_password_change_keep_each_other(stores):
    """A profile edit from a copy read before a password change writes its fields only:
    the old hash never comes back (nor does a password change undo ``private``)."""
    user = make_user()
    await stores.accounts.create_user(user)
    await stores.accounts.set_password_hash(user.id, "$new")
    stale = User(user.id, user.username, user.password_hash, "Grace", True, user.created_at)
    await stores.accounts.update_user(stale)
    assert await stores.accounts.get_user(user.id) == User(
        user.id, user.username, "$new", "Grace", True, user.created_at
    )


# ---- photos --------------------------------------------------------------------------


async def test_photo_round_trip_and_idempotent_save(stores):
    photo = make_photo(new_id(), "Sunset over the bay")
    await stores.photos.save_photo(photo, search.terms(photo.title))
    await stores.photos.save_photo(photo, search.terms(photo.title))
    assert await stores.photos.get_photo(photo.id) == photo
    assert await stores.photos.get_photo(new_id()) is None
    assert await stores.photos.user_photo_ids(photo.owner_id, None, 10) == [photo.id]


async def test_get_photos_returns_those_that_exist(stores):
    owner = new_id()
    photos = [make_photo(owner) for _ in range(3)]
    for p in photos:
        await stores.photos.save_photo(p, [])
    missing = new_id()
    got = await stores.photos.get_photos([photos[0].id, missing, photos[2].id])
    assert got == {photos[0].id: photos[0], photos[2].id: photos[2]}
    assert await stores.photos.get_photos([]) == {}


async def test_user_photos_newest_first_paged_across_buckets(stores):
    owner = new_id()
    now = ids.now_ms()
    # 12 photos, 2 days apart: about 24 days, so four or five 6.2-day buckets.
    photo_ids = [new_id(now - k * 2 * DAY_MS) for k in range(12)]
    assert len({ids.bucket_of(i) for i in photo_ids}) >= 4
    for pid in photo_ids:
        await stores.photos.save_photo(make_photo(owner, photo_id=pid), [])
    await stores.photos.save_photo(make_photo(new_id()), [])  # someone else's

    pages, before = [], None
    while True:
        page = await stores.photos.user_photo_ids(owner, before, 5)
        if not page:
            break
        pages.append(page)
        before = page[-1]
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [i for p in pages for i in p] == sorted(photo_ids, reverse=True)


# ---- follows -------------------------------------------------------------------------


async def test_follow_both_directions_with_paging_and_counts(stores):
    star = new_id()
    fans = sorted(new_id() for _ in range(7))
    for fan in fans:
        assert await stores.graph.follow(fan, star, datetime.now(UTC)) is True
    assert await stores.graph.follow(fans[0], star, datetime.now(UTC)) is False
    assert await stores.graph.follow(star, fans[0], datetime.now(UTC)) is True

    page1 = await stores.graph.followers(star, None, 4)
    page2 = await stores.graph.followers(star, page1[-1], 4)
    assert page1 + page2 == fans
    assert await stores.graph.following(fans[3], None, 10) == [star]
    assert await stores.graph.following(star, None, 10) == [fans[0]]
    assert await stores.graph.is_following(fans[3], star)
    assert not await stores.graph.is_following(star, fans[3])
    assert await stores.graph.count_follows(star) == (7, 1)

    assert await stores.graph.unfollow(fans[3], star) is True
    assert await stores.graph.unfollow(fans[3], star) is False
    assert not await stores.graph.is_following(fans[3], star)
    assert fans[3] not in await stores.graph.followers(star, None, 10)
    assert await stores.graph.following(fans[3], None, 10) == []
    assert await stores.graph.count_follows(star) == (6, 1)
    assert await stores.graph.count_follows(new_id()) == (0, 0)


# ---- title index ---------------------------------------------------------------------


async def test_title_search_every_word_must_match_newest_first(stores):
    tag = uuid.uuid4().hex[:8]  # a word no other test uses
    owner = new_id()
    now = ids.now_ms()
    titles = {
        "a": f"Crème Brûlée at the café {tag}",
        "b": f"CAFE {tag} morning",
        "c": f"{tag}: sunrise, no coffee",
        "d": f"Brulee {tag} CAFÉ again",
    }
    photo_ids = {}
    for k, (key, title) in enumerate(titles.items()):
        photo = make_photo(
            owner, title, photo_id=new_id(now - k * 5 * DAY_MS)
        )  # spread over buckets
        photo_ids[key] = photo.id
        await stores.photos.save_photo(photo, search.terms(title))

    async def find(query, before=None, limit=10):
        return (await stores.search.search_terms(search.terms(query), before, limit, 1000)).ids

    assert await find(f"{tag} cafe") == [photo_ids["a"], photo_ids["b"], photo_ids["d"]]
    assert await find(f"BRÛLÉE {tag}") == [photo_ids["a"], photo_ids["d"]]
    assert await find(f"{tag} sunrise") == [photo_ids["c"]]
    assert await find(f"{tag} cafe sunrise") == []
    assert await find(f"{tag} cafe", before=photo_ids["a"], limit=1) == [photo_ids["b"]]
    assert (await stores.search.search_terms([], None, 10, 1000)).ids == []


async def test_title_search_reads_at_most_its_budget_and_says_where_it_stopped(stores):
    # Two words on many titles that meet on two old ones: a read walks a few postings,
    # answers what it found and where it stopped, and reads from there on find the rest.
    tag = uuid.uuid4().hex[:8]
    left, right = f"left{tag}", f"right{tag}"
    owner = new_id()
    now = ids.now_ms()
    titles = [f"{left} {right} old", f"{left} {right} older"]
    titles = [f"{left} {k}" if k % 2 else f"{right} {k}" for k in range(24)] + titles
    saved = []
    for k, title in enumerate(titles):  # newest first, half a day apart: over 3 buckets
        photo = make_photo(owner, title, photo_id=new_id(now - k * DAY_MS // 2))
        saved.append(photo.id)
        await stores.photos.save_photo(photo, search.terms(title))
    both = saved[-2:]
    terms = search.terms(f"{right} {left}")

    found, reads, before = [], 0, None
    while True:
        hits = await stores.search.search_terms(terms, before, 10, 5)
        assert hits.read <= 5
        assert all(i < (before or ids.MAX_ID) for i in hits.ids)
        found += hits.ids
        reads += 1
        if hits.stopped_at is None:
            break
        before = hits.stopped_at
    assert found == both
    assert reads == 3  # the 14 postings of the walked (longest) word, 5 a read

    # A limit reached ends a read with no stop: the caller goes on from its last id.
    hits = await stores.search.search_terms(terms, both[0] + 1, 1, 1000)
    assert (hits.ids, hits.stopped_at) == ([both[0]], None)
    hits = await stores.search.search_terms(terms, both[0], 1, 1000)
    assert (hits.ids, hits.stopped_at) == ([both[1]], None)
    unbounded = await stores.search.search_terms(terms, None, 10, 1000)
    assert (unbounded.ids, unbounded.stopped_at) == (both, None)
    assert unbounded.read == 14  # every posting of the walked word


# ---- soft delete, restore, purge ---------------------------------------------------------


async def test_soft_delete_queues_restore_dequeues_purge_removes_everything(stores):
    tag = uuid.uuid4().hex[:8]
    owner = new_id()
    photo = make_photo(owner, f"goodbye {tag}")
    terms = search.terms(photo.title)
    await stores.photos.save_photo(photo, terms)
    liker = new_id()
    await stores.likes.like(photo.id, liker, datetime.now(UTC))

    deleted_at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    await stores.photos.set_deleted(photo, deleted_at)
    stored = await stores.photos.get_photo(photo.id)
    assert stored.deleted_at == deleted_at
    assert stored.with_deleted_at(None) == photo  # the record itself is untouched
    due = [e.photo_id for e in await stores.photos.due_purges(date(2026, 3, 1), 1000)]
    assert photo.id in due
    assert photo.id not in [
        e.photo_id for e in await stores.photos.due_purges(date(2026, 2, 28), 1000)
    ]

    await stores.photos.set_deleted(stored, None)
    assert (await stores.photos.get_photo(photo.id)).deleted_at is None
    assert photo.id not in [
        e.photo_id for e in await stores.photos.due_purges(date(2026, 3, 1), 1000)
    ]

    await stores.photos.set_deleted(photo, deleted_at)
    stored = await stores.photos.get_photo(photo.id)
    await stores.photos.purge_photo(stored, terms)
    assert await stores.photos.get_photo(photo.id) is None
    assert await stores.photos.user_photo_ids(owner, None, 10) == []
    assert (await stores.search.search_terms(search.terms(tag), None, 10, 1000)).ids == []
    assert await stores.likes.like_counts([photo.id]) == {photo.id: 0}
    assert photo.id not in [
        e.photo_id for e in await stores.photos.due_purges(date(2026, 3, 1), 1000)
    ]
    await stores.photos.purge_photo(stored, terms)  # purging again is a no-op


async def test_forget_purge_drops_only_that_entry(stores):
    a, b = make_photo(new_id()), make_photo(new_id())
    at = datetime(2026, 4, 2, tzinfo=UTC)
    for p in (a, b):
        await stores.photos.save_photo(p, [])
        await stores.photos.set_deleted(p, at)
    entries = {e.photo_id: e for e in await stores.photos.due_purges(date(2026, 4, 2), 1000)}
    assert entries[a.id].day == date(2026, 4, 2)
    await stores.photos.forget_purge(entries[a.id])
    left = [e.photo_id for e in await stores.photos.due_purges(date(2026, 4, 2), 1000)]
    assert a.id not in left and b.id in left


# ---- likes ---------------------------------------------------------------------------


async def test_likes_count_once_per_user(stores):
    photo, other = make_photo(new_id()), make_photo(new_id())
    await stores.photos.save_photo(photo, [])
    alice, bob = new_id(), new_id()
    now = datetime.now(UTC)
    assert await stores.likes.like(photo.id, alice, now) is True
    assert await stores.likes.like(photo.id, alice, now) is False
    assert await stores.likes.like(photo.id, bob, now) is True
    assert await stores.likes.like_counts([photo.id, other.id]) == {photo.id: 2, other.id: 0}
    assert await stores.likes.unlike(photo.id, alice) is True
    assert await stores.likes.unlike(photo.id, alice) is False
    assert await stores.likes.like_counts([photo.id]) == {photo.id: 1}


async def test_ping(stores):
    await stores.metadata.ping()
    await stores.blobs.ping()
    assert set((await stores.ping()).values()) == {"ok"}


# ---- service additions: latest ids, photo counts, requests, sessions, idempotency ---------


async def test_latest_photo_ids_and_counts(stores):
    a, b, quiet = new_id(), new_id(), new_id()
    now = ids.now_ms()
    newer = make_photo(a, photo_id=new_id(now))
    older = make_photo(a, photo_id=new_id(now - 3 * DAY_MS))
    await stores.photos.save_photo(newer, [])
    await stores.photos.save_photo(older, [])  # saved last, yet older: must not win
    only_b = make_photo(b)
    await stores.photos.save_photo(only_b, [])
    assert await stores.photos.latest_photo_ids([a, b, quiet]) == {a: newer.id, b: only_b.id}
    assert await stores.photos.latest_photo_ids([]) == {}
    assert await stores.photos.count_photos(a) == PhotoCounts(2)
    await stores.photos.set_deleted(older, datetime.now(UTC))
    assert await stores.photos.count_photos(a) == PhotoCounts(1)
    await stores.photos.set_deleted(await stores.photos.get_photo(older.id), None)
    assert await stores.photos.count_photos(a) == PhotoCounts(2)
    assert await stores.photos.count_photos(quiet) == PhotoCounts(0)


async def test_counts_say_how_many_photos_only_followers_or_the_owner_see(stores):
    owner = new_id()
    shown = {
        v: make_photo(owner, visibility=v)
        for v in (Visibility.PUBLIC, Visibility.FOLLOWERS, Visibility.PRIVATE)
    }
    extra = make_photo(owner, visibility=Visibility.PRIVATE)
    for photo in (*shown.values(), extra):
        await stores.photos.save_photo(photo, [])
        await stores.photos.save_photo(photo, [])  # a retried save counts nothing twice
    assert await stores.photos.count_photos(owner) == PhotoCounts(4, followers=1, private=2)
    await stores.photos.set_deleted(extra, datetime.now(UTC))
    assert await stores.photos.count_photos(owner) == PhotoCounts(3, followers=1, private=1)
    await stores.photos.set_deleted(shown[Visibility.FOLLOWERS], datetime.now(UTC))
    assert await stores.photos.count_photos(owner) == PhotoCounts(2, followers=0, private=1)
    restored = await stores.photos.get_photo(shown[Visibility.FOLLOWERS].id)
    await stores.photos.set_deleted(restored, None)
    assert await stores.photos.count_photos(owner) == PhotoCounts(3, followers=1, private=1)
    purged = await stores.photos.get_photo(extra.id)
    await stores.photos.purge_photo(purged, [])
    assert await stores.photos.count_photos(owner) == PhotoCounts(3, followers=1, private=1)


async def test_follow_requests(stores):
    private, x, y = new_id(), new_id(), new_id()
    now = datetime.now(UTC)
    assert await stores.graph.add_follow_request(private, y, now) is True
    assert await stores.graph.add_follow_request(private, x, now) is True
    assert await stores.graph.add_follow_request(private, x, now) is False
    assert await stores.graph.follow_requests(private, None, 10) == sorted([x, y])
    assert await stores.graph.follow_requests(private, min(x, y), 10) == [max(x, y)]
    assert await stores.graph.remove_follow_request(private, x) is True
    assert await stores.graph.remove_follow_request(private, x) is False
    assert await stores.graph.follow_requests(private, None, 10) == [y]


async def test_has_follow_request_answers_for_one_pair(stores):
    private, x, y = new_id(), new_id(), new_id()
    assert await stores.graph.has_follow_request(private, x) is False
    await stores.graph.add_follow_request(private, x, datetime.now(UTC))
    assert await stores.graph.has_follow_request(private, x) is True
    assert await stores.graph.has_follow_request(private, y) is False  # another requester
    assert await stores.graph.has_follow_request(x, private) is False  # not the other way
    await stores.graph.remove_follow_request(private, x)
    assert await stores.graph.has_follow_request(private, x) is False


async def claimed(stores, user, key, photo_id, now=None):
    now = now or datetime.now(UTC)
    return await stores.claims.claim_idempotency_key(
        user, key, photo_id, now, now + timedelta(days=1)
    )


async def test_idempotency_keys_are_claimed_once(stores):
    user, key = new_id(), uuid.uuid4().hex
    first, second = new_id(), new_id()
    assert (await claimed(stores, user, key, first)).photo_id == first
    assert (await claimed(stores, user, key, first)).photo_id == first  # a retry of the same claim
    assert (await claimed(stores, user, key, second)).photo_id == first
    assert (await claimed(stores, new_id(), key, second)).photo_id == second  # per user
    await stores.claims.release_idempotency_key(user, key, second)  # not its claim: no effect
    assert (await claimed(stores, user, key, second)).photo_id == first
    await stores.claims.release_idempotency_key(user, key, first)
    assert (await claimed(stores, user, key, second)).photo_id == second


async def test_a_claim_is_taken_over_only_as_it_was_read(stores):
    user, key = new_id(), uuid.uuid4().hex
    old, new, late = new_id(), new_id(), new_id()
    then = datetime.now(UTC) - timedelta(minutes=5)
    await claimed(stores, user, key, old, then)
    held = await claimed(stores, user, key, new)
    assert held.photo_id == old and held.intent is None
    assert abs(held.claimed_at - then) < timedelta(milliseconds=2)
    now = datetime.now(UTC)
    expires = now + timedelta(days=1)
    assert await stores.claims.take_over_idempotency_key(user, key, held, new, now, expires) is True
    # A second retry that read the same stale claim loses: the claim changed meanwhile.
    assert (
        await stores.claims.take_over_idempotency_key(user, key, held, late, now, expires) is False
    )
    assert (await claimed(stores, user, key, late)).photo_id == new


async def test_a_fenced_attempt_can_neither_renew_nor_record_its_intent(stores):
    user, key = new_id(), uuid.uuid4().hex
    old, new = new_id(), new_id()
    then = datetime.now(UTC) - timedelta(minutes=5)
    held = await claimed(stores, user, key, old, then)
    now = datetime.now(UTC)
    expires = now + timedelta(days=1)
    assert await stores.claims.take_over_idempotency_key(user, key, held, new, now, expires)
    photo = make_photo(user, "fenced", photo_id=old)
    assert await stores.claims.renew_idempotency_key(user, key, old, now, expires) is False
    assert (
        await stores.claims.renew_idempotency_key(user, key, old, now, expires, intent=photo)
        is False
    )
    claim = await claimed(stores, user, key, old)
    assert claim.photo_id == new and claim.intent is None


async def test_an_intent_is_recorded_and_ends_takeovers(stores):
    user, key = new_id(), uuid.uuid4().hex
    holder, retry = new_id(), new_id()
    then = datetime.now(UTC) - timedelta(minutes=5)
    held = await claimed(stores, user, key, holder, then)
    photo = make_photo(user, "meant", photo_id=holder)
    later = then + timedelta(seconds=1)
    assert await stores.claims.renew_idempotency_key(
        user, key, holder, later, later + timedelta(days=1), intent=photo
    )
    assert await stores.claims.renew_idempotency_key(
        user, key, holder, later, later + timedelta(days=1)
    )  # heartbeat
    claim = await claimed(stores, user, key, retry)
    assert claim.photo_id == holder and claim.intent == photo  # a heartbeat keeps the intent
    now = datetime.now(UTC)
    # The claim read before the intent was recorded is no longer the claim.
    assert (
        await stores.claims.take_over_idempotency_key(
            user, key, held, retry, now, now + timedelta(days=1)
        )
        is False
    )
    assert (await claimed(stores, user, key, retry)).intent == photo
