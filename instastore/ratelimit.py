"""Per-key token buckets: ``rate`` events per minute with bursts up to ``rate``; and the
log-in throttle built from two of them.

In-process: with several worker processes each enforces its own share. Good enough to
stop a runaway client; a shared limiter would live in the metadata store.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from instastore.errors import RateLimited
from instastore.limits import KNOWN_ACCOUNTS, KNOWN_ADDRESSES, MAX_KEYS


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
