"""Leases and shared limit counts (the LeaseStore port), and the rules built on them
(instastore.leases): one holder at a time, on both adapters."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import uuid

import pytest

from instastore import ids, leases
from instastore.clock import utcnow
from instastore.errors import Conflict, Unavailable
from instastore.leases import Lease, LeaseHeld, LeaseLost, WorkerIds, job_lease

from ..factories import make_photo, make_user, new_id


def _name() -> str:
    return f"test/{uuid.uuid4().hex}"


def _dead_holder(role: str = "pack") -> str:
    """The holder name of a process of this host that has ended."""
    code = f"from instastore import leases; print(leases.holder_name({role!r}))"
    made = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return made.stdout.strip()


async def test_a_lease_has_one_holder_until_it_is_released(stores):
    name = _name()
    first = await Lease.take(stores.leases, name, "first")
    with pytest.raises(LeaseHeld, match=r"held by first on .* since 20"):
        await Lease.take(stores.leases, name, "second")
    state = await stores.leases.read_lease(name)
    assert state.holder == first.holder
    assert await first.renew()
    await first.release()
    assert (await stores.leases.read_lease(name)).holder is None
    second = await Lease.take(stores.leases, name, "second")
    assert second.trusted() and not first.trusted()
    assert not await first.renew(), "a released lease taken by another cannot be renewed"
    await second.release()


async def test_a_lease_not_renewed_expires_and_can_be_taken_over(stores):
    name = _name()
    holder = leases.holder_name("dead")
    taken = await stores.leases.take_lease(name, holder, 1, utcnow())
    assert taken.holder == holder
    other = leases.holder_name("alive")
    assert (await stores.leases.take_lease(name, other, 1, utcnow())).holder == holder
    await asyncio.sleep(2.2)  # Cassandra's TTLs count whole seconds
    assert (await stores.leases.take_lease(name, other, 30, utcnow())).holder == other
    assert not await stores.leases.renew_lease(name, holder, 30, 0, utcnow())


async def test_a_taking_tried_again_finds_its_own_lease(stores):
    name = _name()
    holder = leases.holder_name("retry")
    first = await stores.leases.take_lease(name, holder, 30, utcnow())
    again = await stores.leases.take_lease(name, holder, 30, utcnow())
    assert first.holder == again.holder == holder


async def test_high_ms_outlives_the_lease_and_the_next_holder_starts_after_it(stores):
    number = random.randrange(ids.MAX_WORKER + 1)
    first = await WorkerIds.start(stores.leases, number, "first")
    first.generator.next_id()
    first.lease.used_ms = ids.now_ms() + 1_000  # as if it made ids up to a second from now
    used = first.lease.used_ms
    await first.close()
    assert (await stores.leases.read_lease(leases.worker_lease(number))).high_ms == used
    after = await WorkerIds.start(stores.leases, number, "second")
    try:
        made = [after.generator.next_id() for _ in range(3)]
        assert all(ids.unix_ms_of(i) > used for i in made)
        assert made == sorted(set(made))
    finally:
        await after.close()


async def test_a_fixed_worker_number_of_a_crashed_holder_is_taken_after_its_horizon(stores):
    """A holder SIGKILLed on this host left its last renewal's horizon (ids it may have
    made up to then): the fixed number is taken over at once, and ids start past it."""
    number = random.randrange(ids.MAX_WORKER + 1)
    name = leases.worker_lease(number)
    dead = await asyncio.to_thread(_dead_holder, "x")
    horizon = ids.now_ms() + 2_500
    await stores.leases.take_lease(name, dead, 30, utcnow())
    assert await stores.leases.renew_lease(name, dead, 30, horizon, utcnow())
    worker = await WorkerIds.start(stores.leases, number, "serve")
    try:
        assert ids.now_ms() > horizon
        assert ids.unix_ms_of(worker.generator.next_id()) > horizon
    finally:
        await worker.close()


async def test_worker_numbers_are_leased_one_process_each(stores):
    one = await WorkerIds.start(stores.leases, None, "one")
    two = await WorkerIds.start(stores.leases, None, "two")
    try:
        assert one.generator.worker_id != two.generator.worker_id
        assert one.check() == two.check() == "ok"
        with pytest.raises(Conflict, match=f"worker_id {one.generator.worker_id} is held by one"):
            await WorkerIds.start(stores.leases, one.generator.worker_id, "three")
        made = {one.generator.next_id() for _ in range(500)}
        made |= {two.generator.next_id() for _ in range(500)}
        assert len(made) == 1000
    finally:
        await one.close()
        await two.close()
    again = await WorkerIds.start(stores.leases, one.generator.worker_id, "three")
    try:
        assert again.generator.worker_id == one.generator.worker_id
        assert again.generator.next_id() > max(made)
    finally:
        await again.close()


async def test_a_fixed_worker_number_used_ahead_of_this_clock_is_refused(stores):
    number = random.randrange(ids.MAX_WORKER + 1)
    name = leases.worker_lease(number)
    lease = await Lease.take(stores.leases, name, "a host whose clock ran fast")
    lease.used_ms = ids.now_ms() + 60_000
    await lease.release()
    with pytest.raises(Conflict, match=f"worker_id {number} made ids up to"):
        await WorkerIds.start(stores.leases, number, "serve")


async def test_ids_stop_once_the_lease_is_not_renewed_in_time(stores):
    worker = await WorkerIds.start(stores.leases, None, "fenced")
    try:
        worker.generator.next_id()
        now = [0.0]
        lease = worker.lease
        lease._monotonic = lambda: now[0]
        lease._trusted_until = leases.FENCE_S
        now[0] = leases.FENCE_S + 0.001  # no renewal landed for FENCE_S
        with pytest.raises(Unavailable, match="lease is not renewed"):
            worker.generator.next_id()
        assert worker.check() != "ok"
        assert await lease.renew(), "still ours: the store never saw it expire"
        worker.generator.next_id()
    finally:
        await worker.close()


async def test_a_job_lease_refuses_a_second_job_and_ends_with_its_block(stores):
    async with job_lease(stores.leases, "instastore pack"):
        with pytest.raises(LeaseHeld, match="storage job lock is held by instastore pack"):
            async with job_lease(stores.leases, "instastore gc"):
                pass
    async with job_lease(stores.leases, "instastore gc") as lease:
        assert lease.trusted()


async def test_a_job_that_loses_its_lease_is_stopped(stores, monkeypatch):
    monkeypatch.setattr(leases, "RENEW_EVERY_S", 0.05)

    async def another_process(lease: Lease) -> Lease:
        # It takes the lock, as it could once this one's lease expired. A task of its
        # own: the job's cancellation, which may come at once, is not its.
        await stores.leases.release_lease(leases.JOB, lease.holder, lease.used_ms)
        return await Lease.take(stores.leases, leases.JOB, "instastore pack")

    with pytest.raises(LeaseLost, match="lost the storage job lock"):
        async with job_lease(stores.leases, "instastore compact") as lease:
            other = asyncio.create_task(another_process(lease))
            await asyncio.sleep(5)
            pytest.fail("the job went on without its lease")
    pack = await other
    held = await stores.leases.read_lease(leases.JOB)
    assert held.holder == pack.holder
    await pack.release()


async def test_limit_hits_are_counted_per_key_and_minute_in_order(stores):
    key = _name()
    minute = ids.now_ms() // 60_000
    hits = [await stores.leases.add_limit_hit(key, minute) for _ in range(3)]
    await stores.leases.add_limit_hit(key, minute - 1)
    await stores.leases.add_limit_hit(_name(), minute)
    assert await stores.leases.limit_hits(key, minute) == 3
    assert await stores.leases.limit_hits(key, minute - 1) == 1
    assert await stores.leases.limit_hits(key, minute - 2) == 0
    assert [await stores.leases.limit_hits(key, minute, through=h) for h in hits] == [1, 2, 3]


# ---- records are written once --------------------------------------------------------


async def test_a_photo_id_holding_another_photo_is_a_conflict(stores):
    """Two stores (two hosts) that made the same id: the second save fails, the first
    photo stays as it was, and a save tried again of the first still succeeds."""
    owner, other = make_user(), make_user()
    photo_id = new_id()
    first = make_photo(owner.id, "the first upload", photo_id)
    second = make_photo(other.id, "another upload", photo_id)
    await stores.photos.save_photo(first, ["first"])
    with pytest.raises(Conflict, match=f"photo id {photo_id} holds another photo"):
        await stores.photos.save_photo(second, ["another"])
    assert await stores.photos.get_photo(photo_id) == first
    assert await stores.photos.user_photo_ids(other.id, None, 10) == []
    await stores.photos.save_photo(first, ["first"])  # a retry of its own save
    switched = first.with_locators({"thumb": f"t/{photo_id}/moved"})
    assert await stores.photos.switch_locators(
        photo_id, {"thumb": f"t/{photo_id}/thumb"}, {"thumb": f"t/{photo_id}/moved"}
    )
    await stores.photos.save_photo(first, ["first"])  # a late retry after the packer moved it
    assert await stores.photos.get_photo(photo_id) == switched
    assert await stores.photos.user_photo_ids(owner.id, None, 10) == [photo_id]


async def test_a_user_id_holding_another_account_is_a_conflict(stores):
    first = make_user()
    await stores.accounts.create_user(first)
    clash = make_user()
    clash = type(clash)(first.id, clash.username, "$other", "Eve", False, clash.created_at)
    with pytest.raises(Conflict, match=f"user id {first.id} holds another account"):
        await stores.accounts.create_user(clash)
    assert await stores.accounts.get_user(first.id) == first
    assert await stores.accounts.get_user_by_name(clash.username) is None


async def test_an_id_made_twice_loses_no_upload(stores):
    """Two generators with one worker number (what the leases prevent) racing to save:
    every save either lands its own photo or fails; none is told "saved" while another
    photo holds its id."""
    owner = make_user()
    clock = [ids.now_ms() - 10 * 60_000]
    twins = [ids.IdGenerator(5, clock=lambda: clock[0]) for _ in range(2)]
    photos = [make_photo(owner.id, f"twin {i}", twins[i % 2].next_id()) for i in range(40)]
    results = await asyncio.gather(
        *(stores.photos.save_photo(p, []) for p in photos), return_exceptions=True
    )
    saved = [p for p, r in zip(photos, results, strict=True) if r is None]
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    assert len({p.id for p in saved}) == len(saved) == 20
    for photo in saved:
        assert await stores.photos.get_photo(photo.id) == photo


# ---- limits shared by every host -----------------------------------------------------


async def test_a_shared_limit_holds_across_hosts(stores, adapter_settings):
    """Three hosts (three connections to one store) take 45 hits of one key at once:
    exactly the limit gets through, and the others are told when to retry."""
    from instastore.errors import RateLimited
    from instastore.ratelimit import SharedLimit
    from instastore.storage import open_stores

    others = [await open_stores(adapter_settings) for _ in range(2)]
    try:
        at = (ids.now_ms() // 60_000) * 60 + 30.0  # the middle of a minute; the last is empty
        hosts = [
            SharedLimit(s.leases, f"test-{uuid.uuid4().hex}", 10, clock=lambda: at)
            for s in (stores, *others)
        ]
        for host in hosts[1:]:
            host.name = hosts[0].name
        results = await asyncio.gather(
            *(hosts[i % 3].take("user-1", "uploads") for i in range(45)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, RateLimited)]
        assert len(results) - len(refused) == 10
        # past the minute's end: hits of this minute must slide out first
        assert all(r.retry_after > 30 for r in refused)
        await hosts[0].take("user-2", "uploads")  # another key has its own budget
    finally:
        for other in others:
            await other.close()


# ---- a holder that provably ended -----------------------------------------------------


async def test_a_lease_of_a_process_gone_from_this_host_is_taken_over_at_once(stores):
    """A job SIGKILLed on this host: the next run there takes its lease without waiting
    for it to expire. A live holder, or one of another host, is waited for."""
    name = _name()
    dead = await asyncio.to_thread(_dead_holder)
    assert leases.gone(dead)
    assert (await stores.leases.take_lease(name, dead, 30, utcnow())).holder == dead
    lease = await Lease.take(stores.leases, name, "pack again")
    assert lease.holder != dead and lease.trusted()

    alive = leases.holder_name("alive")  # this process: still running
    elsewhere = alive.replace(" on ", " on another-host-", 1)
    assert not leases.gone(alive) and not leases.gone(elsewhere)
    for holder in (alive, elsewhere):
        other = _name()
        await stores.leases.take_lease(other, holder, 30, utcnow())
        with pytest.raises(LeaseHeld):
            await Lease.take(stores.leases, other, "waits")
    await lease.release()


# ---- what a review found ---------------------------------------------------------------


async def test_renewals_keep_high_ms_within_the_fence_of_now(stores):
    """Each renewal allows ids up to FENCE_S past its own start, not past the last
    renewal's horizon: a long-running holder's horizon never runs ahead of the clock."""
    lease = await Lease.take(stores.leases, _name(), "long running")
    for _ in range(6):
        assert await lease.renew()
    assert lease.high_ms <= ids.now_ms() + leases.FENCE_S * 1000
    await lease.release()


async def test_a_job_whose_renewal_hangs_is_stopped_when_its_fence_closes(stores, monkeypatch):
    """A renewal that neither lands nor fails (a store timing out and retrying) must not
    let the job run past the moment another process may take the lock."""
    monkeypatch.setattr(leases, "RENEW_EVERY_S", 0.05)
    monkeypatch.setattr(leases, "FENCE_S", 0.5)

    class Hanging:
        def __getattr__(self, name):
            return getattr(stores.leases, name)

        async def renew_lease(self, *args):
            if hanging:
                await asyncio.sleep(3600)
            return await stores.leases.renew_lease(*args)

    hanging = False
    loop = asyncio.get_running_loop()
    with pytest.raises(LeaseLost, match="lost the storage job lock"):
        async with job_lease(Hanging(), "instastore compact") as lease:
            hanging = True
            started = loop.time()
            await asyncio.sleep(5)
            pytest.fail("the job went on past its fence")
    assert loop.time() - started < 1.0 and not lease.trusted()
    await stores.leases.release_lease(leases.JOB, lease.holder, 0)


def test_a_holder_in_another_pid_namespace_is_never_taken_for_gone():
    """Containers on one kernel share its boot id and may share a host name, but not
    their pids: a holder whose pid namespace differs is left to its lease's expiry."""
    dead = _dead_holder()
    boot, ns, _ = dead.rsplit("#", 1)[1].split(".", 2)
    elsewhere = dead.replace(f"#{boot}.{ns}.", f"#{boot}.{int(ns) + 1}.")
    assert leases.gone(dead)
    assert elsewhere != dead and not leases.gone(elsewhere)
