"""Rate limits shared by every process and host of a deployment: uploads per user,
sign-ups per client address, and failed log-ins per address and per account.

Hits are rows in the metadata store (``LeaseStore.add_limit_hit``), so N hosts allow the
setting, not N times it, and a restart resets nothing. The log-in throttle's memory of
which addresses an account's owner logged in from is per process (below).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from instastore.errors import RateLimited
from instastore.limits import KNOWN_ACCOUNTS, KNOWN_ADDRESSES
from instastore.storage.ports import LeaseStore

MINUTE_S = 60


@dataclass(frozen=True)
class Hit:
    """One accepted hit, as stored: handed back to ``SharedLimit.refund``."""

    row: str
    minute: int
    hit: object


class SharedLimit:
    """At most ``per_minute`` hits per key in any sliding minute, across every process
    and host.

    Each hit is a row by key and minute, in the order written; the count is this minute's
    hits plus the last minute's weighted by the share of it still inside the sliding
    minute (Cloudflare's sliding-window estimate). A hit is refused unwritten while one
    more would pass the limit, so a flood writes nothing. A hit written is then kept only if
    its own place among this minute's hits (those up to and including it) keeps the count
    within the limit, and removed otherwise: places are the same for every reader, so of
    hits racing on many hosts the first ones win, and never more than the limit (hosts'
    clocks order Cassandra's hits, so a skew between them may let a racing hit or two
    more through). Only accepted hits count.
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

    async def take(self, key: object, what: str) -> Hit:
        """Count one hit of ``key``, or raise ``RateLimited`` saying when to retry."""
        row = f"{self.name}:{key}"
        now = self.clock()
        minute = int(now // MINUTE_S)
        last, this = await asyncio.gather(
            self.store.limit_hits(row, minute - 1), self.store.limit_hits(row, minute)
        )
        if self._count(now, this + 1, last) > self.per_minute:
            self._refuse(now, this, last, what)
        hit = Hit(row, minute, await self.store.add_limit_hit(row, minute))
        place = await self.store.limit_hits(row, minute, through=hit.hit)
        if self._count(now, place, last) > self.per_minute:
            await self.refund(hit)
            self._refuse(now, place - 1, last, what)
        return hit

    async def refund(self, hit: Hit) -> None:
        """Take back an accepted hit (a log-in that succeeded spends nothing)."""
        await self.store.remove_limit_hit(hit.row, hit.minute, hit.hit)

    @staticmethod
    def _count(now: float, this: int, last: int) -> float:
        inside = 1 - (now % MINUTE_S) / MINUTE_S  # of the last minute, still in the window
        return this + last * inside

    def _refuse(self, now: float, this: int, last: int, what: str) -> None:
        """``RateLimited`` with the seconds until one more hit fits beside ``this``
        minute's and the ``last`` one's (the count falls as the last minute slides out
        of the window, then as this one does)."""
        limit, share = self.per_minute, (now % MINUTE_S) / MINUTE_S
        if this + 1 <= limit and last:  # later this minute
            wait = (1 - (limit - this - 1) / last - share) * MINUTE_S
        else:  # next minute, once enough of this one slid out
            wait = (1 - share + max(0.0, 1 - (limit - 1) / max(this, 1))) * MINUTE_S
        raise RateLimited(
            f"too many {what}: at most {limit} per minute", max(1, math.ceil(wait) + 1)
        )


class LoginThrottle:
    """Failed log-ins, limited per client address and per account, on every host.

    An address that keeps failing is refused (429) whatever account it tries. An account
    that keeps failing is refused only to addresses that never logged in to it: its owner,
    back at an address that worked before, is not locked out by someone guessing from
    elsewhere; from a new address they are slowed to the account's rate, never shut out
    for longer than the sliding minute. Each attempt holds a hit of both budgets while
    its password is checked (so attempts racing on many hosts cannot pass the budget
    together), and a success gives its own hits back: only failures spend, and one
    client's success never resets another's budget.

    Which addresses logged in to an account is remembered per process (the latest
    ``KNOWN_ADDRESSES`` of ``KNOWN_ACCOUNTS`` accounts): behind a balancer the owner may
    reach a host that has not seen them, which slows them like a new address.
    """

    def __init__(
        self,
        store: LeaseStore,
        per_address: int,
        per_account: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.by_address = SharedLimit(store, "login-address", per_address, clock)
        self.by_account = SharedLimit(store, "login-account", per_account, clock)
        self._good: OrderedDict[str, list[str]] = OrderedDict()  # account -> addresses

    async def admit(self, account: str, address: str) -> list[Hit]:
        """Before checking a password: hold this attempt's hits, or ``RateLimited``."""
        # SECURITY: checked for unknown accounts too, so a 429 does not tell which exist.
        hits = [await self.by_address.take(address, "failed log-ins from this address")]
        if not self._known(account, address):
            try:
                hits.append(await self.by_account.take(account, "failed log-ins on this account"))
            except RateLimited:
                await self.by_address.refund(hits[0])
                raise
        return hits

    async def refund(self, hits: list[Hit]) -> None:
        """Give an attempt's hits back (it succeeded, or never checked a password)."""
        for hit in hits:
            await self.by_address.refund(hit)

    async def succeeded(self, account: str, address: str, hits: list[Hit]) -> None:
        await self.refund(hits)
        addresses = [a for a in self._good.pop(account, []) if a != address]
        self._good[account] = [address, *addresses][:KNOWN_ADDRESSES]
        if len(self._good) > KNOWN_ACCOUNTS:
            self._good.popitem(last=False)

    def _known(self, account: str, address: str) -> bool:
        return address in self._good.get(account, ())
