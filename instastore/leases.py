"""Leases: one holder at a time, across every process and host of a deployment.

Two uses:

- the worker number each process puts into the ids it makes (``WorkerIds``): no two
  live processes hold one number, so no two make the same id, with no setting needed;
- the storage job lock (``job_lease``): ``pack``, ``compact``, ``gc``, ``purge``,
  ``backup create`` and ``backup restore`` run one at a time, cluster-wide; a second run
  anywhere is refused, naming who holds the lock and since when.

A lease is taken with a conditional write (``LeaseStore.take_lease``) and renewed by its
holder every ``RENEW_EVERY_S``; the store lets it expire ``TTL_S`` after the last renewal
that landed, and only then may another process take it, or at once when the holder is a
process of the same host that provably ended (``gone``: SIGKILLed, crashed). Fencing: a
holder trusts its lease only ``FENCE_S`` after the START of its last renewal that landed,
which is before the store's clock started the new TTL; ``TTL_S - FENCE_S`` covers clocks
that run at slightly different rates. So a holder that cannot renew (its store
unreachable, its process paused) stops making ids, or its job is cancelled, before anyone
else can take the lease. Every id is also kept at or below the lease's ``high_ms``, the
millisecond written with the last renewal, and a new holder starts after the ``high_ms``
its predecessors left: an id is never made twice even when clocks step back or disagree
between hosts.

This module owns the lease rules; the stores only keep the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

from instastore import ids
from instastore.clock import utcnow
from instastore.errors import Conflict, InstastoreError, Unavailable
from instastore.storage import scratch
from instastore.storage.ports import LeaseState, LeaseStore

log = logging.getLogger(__name__)

TTL_S = 30  # seconds a lease lives past its last renewal: how long a dead holder blocks
RENEW_EVERY_S = 5.0  # seconds between renewals: four may fail before the fence closes
FENCE_S = 20.0  # seconds a holder trusts a renewal that landed, counted from its start
WORKER_TRIES = 32  # random worker numbers tried before giving up (8,192 exist)
TAKE_TRIES = 3  # takings of a lease seen free but not ours (it expired as we looked)
JOB = "job"  # the lease every storage job holds while it runs


def worker_lease(number: int) -> str:
    return f"worker/{number}"


def holder_name(role: str) -> str:
    """Who holds a lease, as an operator reads it; unique per process and attempt. Its
    tag says which boot of which host, and which process of that pid, so that another
    process of the same host can tell when the holder is gone (``gone``)."""
    tag = f"{_boot_id()}.{_pid_namespace()}.{_started(os.getpid()) or 0}.{secrets.token_hex(3)}"
    return f"{role} on {scratch.host()} pid {os.getpid()} #{tag}"


_HOLDER = re.compile(
    r" on (?P<host>\S+) pid (?P<pid>\d+) "
    r"#(?P<boot>\w+)\.(?P<ns>\d+)\.(?P<started>\d+)\.\w+$"
)


def gone(holder: str) -> bool:
    """Is ``holder`` provably dead: a process of this host, since this boot, that no
    longer runs (or whose pid now belongs to a process started at another time)? Any
    other holder (another host's, a live one) is left to its lease's expiry."""
    found = _HOLDER.search(holder)
    if found is None or (found["host"], found["boot"], found["ns"]) != (
        scratch.host(),
        _boot_id(),
        _pid_namespace(),
    ):
        return False  # another host, boot or container (pid namespace): only expiry tells
    pid = int(found["pid"])
    if not scratch.running(pid):
        return True
    started = _started(pid)  # None: running, but not readable here; taken as the holder
    return started is not None and started != int(found["started"])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    except OSError:
        return "0"


def _pid_namespace() -> str:
    """The pid namespace this process sees pids in (its inode; "0" if unknown)."""
    try:
        return os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]") or "0"
    except OSError:
        return "0"


def _started(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (None: not known)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


class LeaseHeld(Conflict):
    """Another live process holds the lease."""

    def __init__(self, what: str, state: LeaseState) -> None:
        since = state.since.isoformat(timespec="seconds") if state.since else "a moment ago"
        super().__init__(f"{what} is held by {state.holder} since {since}")
        self.state = state


class LeaseLost(Unavailable):
    """This process no longer holds a lease it relied on (it could not renew it)."""


class Lease:
    """One lease this process holds; ``keep()`` renews it until ``release()``."""

    def __init__(
        self,
        store: LeaseStore,
        name: str,
        holder: str,
        state: LeaseState,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = ids.now_ms,
    ) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.since: datetime | None = state.since
        self.floor_ms = state.high_ms  # the last ms earlier holders may have put into an id
        self.high_ms = state.high_ms  # the last ms our renewals allow ids to carry
        self.used_ms = state.high_ms  # what to leave as high_ms on release
        self._monotonic = monotonic
        self._wall_ms = wall_ms
        self._trusted_until = float("-inf")
        self.lost = False

    @classmethod
    async def take(cls, store: LeaseStore, name: str, role: str, what: str | None = None) -> Lease:
        """Take ``name`` and renew it once (so ``high_ms`` is written before anything
        relies on it); ``LeaseHeld`` if another live process holds it."""
        holder = holder_name(role)
        for _ in range(TAKE_TRIES):
            state = await store.take_lease(name, holder, TTL_S, utcnow())
            if state.holder is not None and state.holder != holder and gone(state.holder):
                # SIGKILLed or crashed on this host: no need to wait out its lease.
                log.warning("lease %s: its holder %s is gone; taking it over", name, state.holder)
                state = await store.take_over_lease(name, state.holder, holder, TTL_S, utcnow())
            if state.holder is not None:
                break  # ours, or another's; None: it expired meanwhile, try again
        if state.holder != holder:
            raise LeaseHeld(what or f"lease {name!r}", state)
        lease = cls(store, name, holder, state)
        try:
            if not await lease.renew():
                raise LeaseLost(f"lease {name!r} was lost right after it was taken")
        except BaseException:
            await lease.release()
            raise
        return lease

    def trusted(self) -> bool:
        return not self.lost and self._monotonic() < self._trusted_until

    def covers(self, ms: int) -> bool:
        """May an id carry millisecond ``ms`` now?"""
        return self.trusted() and self.floor_ms < ms <= self.high_ms

    async def renew(self) -> bool:
        """Renew once; False (and ``lost``) if the lease is not ours any more. Store
        errors propagate: the lease may still be ours, trusted until its fence."""
        started = self._monotonic()
        # Ids may carry ms up to FENCE_S past this renewal's start, as long as it is
        # trusted (never below what an earlier renewal allowed, nor what was used).
        high_ms = max(self.high_ms, max(self.used_ms, self._wall_ms()) + int(FENCE_S * 1000))
        if await self.store.renew_lease(self.name, self.holder, TTL_S, high_ms, utcnow()):
            self.high_ms = high_ms
            self._trusted_until = started + FENCE_S
            return True
        self.lost = True
        self._trusted_until = float("-inf")
        return False

    async def keep(
        self, on_lost: Callable[[], object] | None = None, *, while_trusted: bool = False
    ) -> None:
        """Renew every ``RENEW_EVERY_S`` until cancelled or lost (then ``on_lost``);
        ``while_trusted``: also give up once the fence closes (a job stops, where a
        server's ids only pause until a renewal lands again)."""
        while not self.lost:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                if while_trusted:  # a renewal still running when the fence closes is too late
                    left = max(0.0, self._trusted_until - self._monotonic())
                    async with asyncio.timeout(left):
                        await self.renew()
                else:
                    await self.renew()
            except (InstastoreError, TimeoutError) as exc:
                log.warning("could not renew lease %s (%s): %r", self.name, self.holder, exc)
                if while_trusted and not self.trusted():
                    self.lost = True
        log.error("lease %s of %s was lost: another process may hold it", self.name, self.holder)
        if on_lost is not None:
            on_lost()

    async def release(self) -> None:
        """Stop trusting the lease, then give it up (best effort: it expires anyway)."""
        self._trusted_until = float("-inf")
        self.lost = True
        try:
            await self.store.release_lease(self.name, self.holder, self.used_ms)
        except InstastoreError as exc:
            log.warning("could not release lease %s (it ends in %d s): %s", self.name, TTL_S, exc)


class WorkerIds:
    """The ids of one process, under a leased worker number.

    ``fixed``: that number or a refusal naming its holder; None: any free number. A lease
    lost (not renewed in time, taken over) stops ids at once; the keeper then takes a
    number again (another one unless fixed) and ids resume after it.
    """

    def __init__(self, store: LeaseStore, fixed: int | None, role: str) -> None:
        self.store = store
        self.fixed = fixed
        self.role = role
        self.lease: Lease | None = None
        self.generator = ids.IdGenerator(0 if fixed is None else fixed, fence=self._fence)
        self._keeper: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, store: LeaseStore, fixed: int | None, role: str) -> WorkerIds:
        worker = cls(store, fixed, role)
        await worker._take()
        worker._keeper = asyncio.create_task(worker._keep(), name="worker-lease")
        return worker

    def _fence(self, ms: int) -> None:
        lease = self.lease
        if lease is None or not lease.covers(ms):
            raise Unavailable(
                "this process cannot make ids right now: its worker number's lease is not "
                "renewed (the metadata store is unreachable, or the clock jumped); retry shortly"
            )
        lease.used_ms = max(lease.used_ms, ms)

    async def _take(self) -> None:
        if self.fixed is not None:
            numbers = [self.fixed]
        else:
            numbers = random.sample(range(ids.MAX_WORKER + 1), WORKER_TRIES)
        held: Conflict | None = None
        for number in numbers:
            try:
                lease = await Lease.take(
                    self.store, worker_lease(number), self.role, f"worker_id {number}"
                )
            except LeaseHeld as exc:
                held = exc
                continue
            try:
                ahead = lease.floor_ms - ids.now_ms()
                # A fixed number waits out the horizon a holder that ended without releasing
                # (a crash) left; "auto" takes another number rather than wait long.
                wait_up_to = ids.MAX_CLOCK_BACKWARDS_MS
                if self.fixed is not None:
                    wait_up_to += int(FENCE_S * 1000)
                if ahead > wait_up_to:
                    await lease.release()  # its ids reach past this clock: another number
                    held = Conflict(
                        f"worker_id {number} made ids up to {ahead} ms ahead of this clock"
                    )
                    continue
                if ahead > 0:  # here, not in the generator: never a sleep on the event loop
                    log.info("worker_id %d: waiting %d ms for its last holder's ids", number, ahead)
                    await asyncio.sleep(ahead / 1000)
                    if not await lease.renew():
                        raise LeaseLost(f"worker_id {number}'s lease was lost while waiting")
            except BaseException:
                await lease.release()
                raise
            self.generator.start(number, lease.floor_ms)
            self.lease = lease
            log.info("worker number %d leased by %s", number, lease.holder)
            return
        if self.fixed is not None and held is not None:
            raise Conflict(
                f"{held}; leave worker_id unset (auto) to lease a free one, or stop that process"
            )
        raise Unavailable(f"no free worker number after {len(numbers)} tries: {held}")

    async def _keep(self) -> None:
        while True:
            if self.lease is not None:
                await self.lease.keep()
            try:
                await self._take()
            except InstastoreError as exc:
                log.warning("could not lease a worker number again: %s", exc)
                self.lease = None
                await asyncio.sleep(RENEW_EVERY_S)

    def check(self) -> str:
        """ "ok", or why ids cannot be made now (for readiness)."""
        if self.lease is not None and self.lease.trusted():
            return "ok"
        return "the worker number's lease is not renewed: no ids can be made"

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.wait({self._keeper})  # unlike awaiting it, never swallows our own cancel
        if self.lease is not None:
            await self.lease.release()


@contextlib.asynccontextmanager
async def job_lease(store: LeaseStore, role: str) -> AsyncIterator[Lease]:
    """Hold the storage job lock for the block: ``LeaseHeld`` if another job (anywhere)
    runs; the block is cancelled and ``LeaseLost`` raised if the lock cannot be renewed
    in time."""
    lease = await Lease.take(store, JOB, role, "the storage job lock")
    task = asyncio.current_task()
    assert task is not None
    keeper = asyncio.create_task(
        lease.keep(on_lost=task.cancel, while_trusted=True), name="job-lease"
    )
    try:
        yield lease
    except asyncio.CancelledError:
        if lease.lost:
            raise LeaseLost(
                f"{role} stopped: it lost the storage job lock (not renewed within {FENCE_S:.0f} s)"
            ) from None
        raise
    finally:
        keeper.cancel()
        await asyncio.wait({keeper})  # unlike awaiting it, never swallows our own cancel
        await lease.release()
