"""Rate limits.

- ``SharedLimit``: hits per key and minute counted in the metadata store, so the limit
  holds across every process and host (uploads per user).
- ``RateLimiter``: per-key token buckets in this process (``rate`` per minute, bursts up
  to ``rate``), and the log-in throttle built from two of them: with N processes each
  enforces its own budget, so N times the setting in all (README, "Limits").
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from instastore.errors import RateLimited
from instastore.limits import KNOWN_ACCOUNTS, KNOWN_ADDRESSES, MAX_KEYS
from instastore.storage.ports import LeaseStore

MINUTE_S = 60


class SharedLimit:
    """At most ``per_minute`` hits per key in any sliding minute, across every process
    and host of a deployment.

    Each hit is a row in the metadata store (``LeaseStore.add_limit_hit``), by key and
    minute, in the order written; the count is this minute's hits plus the last minute's
    weighted by the share of it still inside the sliding minute (Cloudflare's
    sliding-window estimate). A hit is refused unwritten while the count is at the limit,
    so a flood writes no more than the limit and its races. A hit written is then
    accepted only if its own place among this minute's hits (the hits up to and including
    it) keeps the count within the limit: places are the same for every reader, so of
    hits racing on many hosts the first ones win, never more than the limit (a refused
    hit still counts, as an attempt).
    """

    def __init__(
        self,
        store: LeaseStore,
        name: str,
        per_minute: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.name = name
        self.per_minute = per_minute
        self.clock = clock

    async def take(self, key: object, what: str) -> None:
        """Count one hit of ``key``, or raise ``RateLimited`` saying when to retry."""
        row = f"{self.name}:{key}"
        now = self.clock()
        minute = int(now // MINUTE_S)
        inside = 1 - (now % MINUTE_S) / MINUTE_S  # of the last minute, still in the window
        before = await self.store.limit_hits(row, minute - 1) * inside
        if before + await self.store.limit_hits(row, minute) >= self.per_minute:
            self._refuse(now, what)
        hit = await self.store.add_limit_hit(row, minute)
        if before + await self.store.limit_hits(row, minute, through=hit) > self.per_minute:
            self._refuse(now, what)

    def _refuse(self, now: float, what: str) -> None:
        wait = max(1, math.ceil(MINUTE_S - now % MINUTE_S))
        raise RateLimited(f"too many {what}: at most {self.per_minute} per minute", wait)


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: Hashable, what: str = "requests") -> None:
        """Spend one token, or raise ``RateLimited`` saying when one will be there."""
        self.check(key, what)
        self.spend(key)

    def check(self, key: Hashable, what: str = "requests") -> None:
        """Raise ``RateLimited`` unless a token is there; spend nothing."""
        tokens = self._tokens(key, self.clock())
        if tokens < 1:
            wait = math.ceil((1 - tokens) / self.refill_per_s)
            raise RateLimited(
                f"too many {what}: at most {int(self.capacity)} per minute", retry_after=wait
            )

    def spend(self, key: Hashable) -> None:
        """Spend one token if there is one (several callers may have passed ``check``)."""
        now = self.clock()
        tokens = self._tokens(key, now)
        if len(self._buckets) >= MAX_KEYS:
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        self._buckets[key] = (max(0.0, tokens - 1), now)

    def _tokens(self, key: Hashable, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.refill_per_s)


class LoginThrottle:
    """Failed log-ins, limited per client address and per account.

    An address that keeps failing is refused (429) whatever account it tries. An account
    that keeps failing is refused only to addresses that never logged in to it: its owner,
    back at an address that worked before, is not locked out by someone guessing from
    elsewhere; from a new address they are slowed to the account's rate, never shut out
    for longer than a token's refill. Only failures spend; a success spends nothing and
    refills nothing, so one client's success never resets another's budget.
    """

    def __init__(
        self, per_address: int, per_account: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.by_address = RateLimiter(per_address, clock)
        self.by_account = RateLimiter(per_account, clock)
        self._good: OrderedDict[str, list[str]] = (
            OrderedDict()
        )  # account -> addresses that logged in

    def check(self, account: str, address: str) -> None:
        """Before verifying a password: ``RateLimited`` if this attempt is over a budget."""
        # SECURITY: checked for unknown accounts too, so a 429 does not tell which exist.
        self.by_address.check(("address", address), "failed log-ins from this address")
        if not self._known(account, address):
            self.by_account.check(("account", account), "failed log-ins on this account")

    def failed(self, account: str, address: str) -> None:
        self.by_address.spend(("address", address))
        if not self._known(account, address):
            self.by_account.spend(("account", account))

    def succeeded(self, account: str, address: str) -> None:
        addresses = [a for a in self._good.pop(account, []) if a != address]
        self._good[account] = [address, *addresses][:KNOWN_ADDRESSES]
        if len(self._good) > KNOWN_ACCOUNTS:
            self._good.popitem(last=False)

    def _known(self, account: str, address: str) -> bool:
        return address in self._good.get(account, ())
