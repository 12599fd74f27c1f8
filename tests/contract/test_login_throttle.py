"""The log-in throttle's rules, the sign-up limit and the password-hashing pools'
shedding, with a fake clock, on the embedded store (the limits are about minutes; they
hold across hosts by the shared counts of tests/contract/test_leases.py; the HTTP
behaviour is in test_hostile_clients.py)."""

from __future__ import annotations

import asyncio

import pytest

from instastore.config import Settings
from instastore.errors import NotAuthenticated, Overloaded, RateLimited
from instastore.passwords import PasswordHashing
from instastore.ratelimit import LoginThrottle, SharedLimit
from instastore.storage import open_stores


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # the start of a minute

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def limits(tmp_path):
    stores = await open_stores(Settings(data_dir=tmp_path / "data"))
    yield stores.leases
    await stores.close()


async def fail(throttle: LoginThrottle, account: str, address: str, times: int) -> None:
    for _ in range(times):
        await throttle.admit(account, address)  # the password was wrong: its hits stay


async def test_an_address_that_keeps_failing_is_refused_whatever_the_account(limits):
    throttle = LoginThrottle(limits, per_address=5, per_account=100, clock=Clock())
    for i in range(5):
        await fail(throttle, f"user{i}", "10.0.0.1", 1)
    with pytest.raises(RateLimited) as refused:
        await throttle.admit("someone-else", "10.0.0.1")
    assert refused.value.retry_after >= 1
    await throttle.admit("someone-else", "10.0.0.2")  # another address is not touched


async def test_a_success_does_not_reset_another_clients_budget(limits):
    throttle = LoginThrottle(limits, per_address=3, per_account=100, clock=Clock())
    await fail(throttle, "alice", "10.0.0.66", 3)
    hits = await throttle.admit("alice", "10.0.0.1")
    await throttle.succeeded("alice", "10.0.0.1", hits)
    with pytest.raises(RateLimited):
        await throttle.admit("alice", "10.0.0.66")


async def test_a_success_spends_nothing(limits):
    throttle = LoginThrottle(limits, per_address=2, per_account=2, clock=Clock())
    for _ in range(10):
        hits = await throttle.admit("alice", "10.0.0.1")
        await throttle.succeeded("alice", "10.0.0.1", hits)
    await fail(throttle, "bob", "10.0.0.1", 2)  # the whole budget is still there


async def test_an_account_under_attack_slows_new_addresses_but_not_its_owners_known_one(limits):
    clock = Clock()
    throttle = LoginThrottle(limits, per_address=100, per_account=3, clock=clock)
    await throttle.succeeded("alice", "10.0.0.1", [])  # alice logged in from here before
    for i in range(3):
        await fail(throttle, "alice", f"10.0.1.{i}", 1)  # guesses from many addresses
    with pytest.raises(RateLimited) as slowed:
        await throttle.admit("alice", "10.0.2.1")
    await throttle.admit("alice", "10.0.0.1")  # the owner at a known address: not locked out
    clock.now += slowed.value.retry_after
    await throttle.admit("alice", "10.0.2.1")  # a new address is slowed, never shut out


async def test_unknown_accounts_are_throttled_like_known_ones(limits):
    throttle = LoginThrottle(limits, per_address=100, per_account=2, clock=Clock())
    await fail(throttle, "nobody", "10.0.0.1", 2)
    with pytest.raises(RateLimited):
        await throttle.admit("nobody", "10.0.0.2")


async def test_the_sliding_minute_lets_hits_back_in_as_the_last_minute_slides_out(limits):
    clock = Clock()
    limit = SharedLimit(limits, "test", 4, clock)
    for _ in range(4):
        await limit.take("k", "tests")
    clock.now += 60  # a new minute: the last one still weighs fully
    with pytest.raises(RateLimited) as refused:
        await limit.take("k", "tests")
    assert refused.value.retry_after == 16  # 1 + 4 * (1 - f) <= 4 once f >= 1/4, +1 s
    clock.now += 16
    await limit.take("k", "tests")
    with pytest.raises(RateLimited) as refused:
        await limit.take("k", "tests")
    assert refused.value.retry_after == 15  # 2 + 4 * (1 - f) <= 4 once f >= 1/2
    clock.now += 15
    await limit.take("k", "tests")


async def test_sign_ups_from_one_address_are_limited(tmp_path):
    from instastore.services import build_services

    settings = Settings(
        data_dir=tmp_path / "data",
        signups_per_address=2,
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
    )
    stores = await open_stores(settings)
    services = build_services(stores, settings)
    try:
        await services.accounts.sign_up("ada", "correct horse", "", "10.0.0.1")
        with pytest.raises(NotAuthenticated):
            await services.accounts.log_in("ada", "wrong horse", "10.0.0.1")
        await services.accounts.sign_up("bob", "correct horse", "", "10.0.0.1")
        with pytest.raises(RateLimited, match="too many sign-ups from this address"):
            await services.accounts.sign_up("eve", "correct horse", "", "10.0.0.1")
        await services.accounts.sign_up("eve", "correct horse", "", "10.0.0.2")
        assert await stores.accounts.get_user_by_name("eve") is not None
    finally:
        await services.close()


async def test_the_hashing_pool_sheds_past_its_queue_and_recovers():
    hashing = PasswordHashing(threads=1, queue=1)
    try:
        hashed = await hashing.hash("a password")
        calls = [asyncio.ensure_future(hashing.verify(hashed, "a password")) for _ in range(4)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert results[:2] == [True, True]
        assert all(isinstance(r, Overloaded) and r.retry_after >= 1 for r in results[2:])
        assert await hashing.verify(hashed, "not it") is False  # the queue has drained
    finally:
        hashing.close()


async def test_sign_ups_hash_on_a_pool_of_their_own_and_are_shed_first():
    """A flood of sign-ups fills only the sign-ups' pool, and a sign-up is shed while a
    log-in waits for a thread: existing users keep logging in."""
    hashing = PasswordHashing(
        threads=1, queue=1, time_cost=1, memory_kib=1024, signup_threads=1, signup_queue=1
    )
    try:
        hashed = await hashing.hash("a password")
        sign_ups = [asyncio.ensure_future(hashing.hash_for_sign_up("new one")) for _ in range(4)]
        log_ins = [asyncio.ensure_future(hashing.verify(hashed, "a password")) for _ in range(2)]
        signed = await asyncio.gather(*sign_ups, return_exceptions=True)
        assert await asyncio.gather(*log_ins) == [True, True]
        assert all(isinstance(r, str) for r in signed[:2])
        assert all(isinstance(r, Overloaded) and "sign-ups" in str(r) for r in signed[2:])

        log_ins = [asyncio.ensure_future(hashing.verify(hashed, "a password")) for _ in range(2)]
        await asyncio.sleep(0)  # one log-in hashes, one waits for the thread
        with pytest.raises(Overloaded, match="sign-ups") as shed:
            await hashing.hash_for_sign_up("new one")
        assert shed.value.retry_after >= 1
        assert await asyncio.gather(*log_ins) == [True, True]
        assert await hashing.hash_for_sign_up("new one")  # no log-in waits: served again
    finally:
        hashing.close()


async def test_a_hash_made_at_one_cost_verifies_at_another():
    """An operator may change the argon2id cost: hashes made before still log in (each
    carries its parameters), and an unknown name is checked against a hash of the cost
    in force, so its timing matches a known name's."""
    default = PasswordHashing(threads=1, queue=1)
    cheap = PasswordHashing(threads=1, queue=1, time_cost=1, memory_kib=1024)
    try:
        assert default.dummy_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert cheap.dummy_hash.startswith("$argon2id$v=19$m=1024,t=1,p=4$")
        old = await default.hash("a password")
        assert await cheap.verify(old, "a password") is True
        assert await cheap.verify(old, "not it") is False
        assert await default.verify(await cheap.hash("another"), "another") is True
    finally:
        default.close()
        cheap.close()
