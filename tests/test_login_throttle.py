"""The log-in throttle's rules and the password-hashing pool's shedding, with a fake clock
(the limits are about minutes; the HTTP behaviour is in test_hostile_clients.py)."""

from __future__ import annotations

import asyncio

import pytest

from instastore.errors import Overloaded, RateLimited
from instastore.passwords import PasswordHashing
from instastore.ratelimit import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, account: str, address: str, times: int) -> None:
    for _ in range(times):
        throttle.check(account, address)
        throttle.failed(account, address)


def test_an_address_that_keeps_failing_is_refused_whatever_the_account():
    throttle = LoginThrottle(per_address=5, per_account=100, clock=Clock())
    for i in range(5):
        fail(throttle, f"user{i}", "10.0.0.1", 1)
    with pytest.raises(RateLimited) as refused:
        throttle.check("someone-else", "10.0.0.1")
    assert refused.value.retry_after >= 1
    throttle.check("someone-else", "10.0.0.2")  # another address is not touched


def test_a_success_does_not_reset_another_clients_budget():
    throttle = LoginThrottle(per_address=3, per_account=100, clock=Clock())
    fail(throttle, "alice", "10.0.0.66", 3)
    throttle.check("alice", "10.0.0.1")
    throttle.succeeded("alice", "10.0.0.1")
    with pytest.raises(RateLimited):
        throttle.check("alice", "10.0.0.66")


def test_an_account_under_attack_slows_new_addresses_but_not_its_owners_known_one():
    clock = Clock()
    throttle = LoginThrottle(per_address=100, per_account=3, clock=clock)
    throttle.succeeded("alice", "10.0.0.1")  # alice logged in from here before
    for i in range(3):
        fail(throttle, "alice", f"10.0.1.{i}", 1)  # guesses from many addresses
    with pytest.raises(RateLimited) as slowed:
        throttle.check("alice", "10.0.2.1")
    throttle.check("alice", "10.0.0.1")  # the owner at a known address: not locked out
    clock.now += slowed.value.retry_after
    throttle.check("alice", "10.0.2.1")  # a new address is slowed, never shut out


def test_unknown_accounts_are_throttled_like_known_ones():
    throttle = LoginThrottle(per_address=100, per_account=2, clock=Clock())
    fail(throttle, "nobody", "10.0.0.1", 2)
    with pytest.raises(RateLimited):
        throttle.check("nobody", "10.0.0.2")


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
