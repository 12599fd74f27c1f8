"""The Idempotency-Key protocol of uploads: one attempt at a time holds a user's key.

An upload with a key is fenced by its claim: claim the key for a new photo id, write the
blobs (renewing the claim meanwhile), record the intended photo in the claim only while
it is still ours, then save the photo. A retry with the same key returns the holder's
photo, re-applies its intended record (the same rows again), takes over a claim gone
stale without an intent (the old attempt, if alive, is then fenced off and removes only
its own blobs), or answers ``InProgress`` while the holder is alive.

This module speaks only to the claims (``IdempotencyStore``); what an earlier attempt
made is found by the caller (``Fence.hold``'s ``earlier``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from instastore.errors import InProgress, InstastoreError
from instastore.limits import IDEMPOTENCY_TTL
from instastore.model import Photo
from instastore.storage.ports import IdempotencyStore, KeyClaim, settle

log = logging.getLogger(__name__)

TAKEOVER_ROUNDS = 3  # claim -> take over -> claim again, when retries race for a stale key
HEARTBEATS_PER_WINDOW = 3  # claim renewals per stale window while an upload works


@dataclass
class Fence:
    """One upload attempt's hold on an Idempotency-Key: ``photo_id`` holds it while the
    attempt works; a retry may take it over once it is ``stale_after`` old."""

    claims: IdempotencyStore
    user_id: int
    key: str
    photo_id: int
    clock: Callable[[], datetime]
    stale_after: timedelta

    async def hold(self, earlier: Callable[[KeyClaim], Awaitable[Photo | None]]) -> Photo | None:
        """Hold the key for ``photo_id`` (claimed, or taken over from a dead attempt), or
        return the photo an earlier attempt with this key made: ``earlier(claim)``, the
        holder's photo, or None when it has none (yet)."""
        for _ in range(TAKEOVER_ROUNDS):
            claim = await self.claim()
            if claim.photo_id == self.photo_id:
                return None
            photo = await earlier(claim)
            if photo is not None:
                return photo
            wait = self.wait_for(claim)
            if wait > 0:
                raise InProgress(
                    "an upload with this Idempotency-Key is still in progress; retry shortly", wait
                )
            await self.take_over(claim)  # won or lost, the next claim says who holds the key
        raise InProgress("other retries with this Idempotency-Key are racing; retry shortly", 1)

    async def claim(self) -> KeyClaim:
        now = self.clock()
        return await settle(
            "claim Idempotency-Key",
            lambda: self.claims.claim_idempotency_key(
                self.user_id, self.key, self.photo_id, now, now + IDEMPOTENCY_TTL
            ),
        )

    def wait_for(self, claim: KeyClaim) -> int:
        """Seconds until ``claim`` goes stale (0: stale now)."""
        if claim.claimed_at is None:
            return 0
        left = (claim.claimed_at + self.stale_after - self.clock()).total_seconds()
        return max(0, math.ceil(left))

    async def take_over(self, claim: KeyClaim) -> None:
        now = self.clock()
        await settle(
            "take over Idempotency-Key",
            lambda: self.claims.take_over_idempotency_key(
                self.user_id, self.key, claim, self.photo_id, now, now + IDEMPOTENCY_TTL
            ),
        )

    async def record_intent(self, photo: Photo) -> bool:
        """Record the photo about to be saved, only while the key is ours."""
        now = self.clock()
        return await settle(
            "record upload intent",
            lambda: self.claims.renew_idempotency_key(
                self.user_id, self.key, self.photo_id, now, now + IDEMPOTENCY_TTL, intent=photo
            ),
        )

    async def keep_alive(self) -> None:
        """Renew the claim a few times per stale window, so that a long upload is never
        taken for a dead one. Failures are only logged: the intent write is the fence."""
        while True:
            await asyncio.sleep(self.stale_after.total_seconds() / HEARTBEATS_PER_WINDOW)
            now = self.clock()
            try:
                if not await self.claims.renew_idempotency_key(
                    self.user_id, self.key, self.photo_id, now, now + IDEMPOTENCY_TTL
                ):
                    return  # taken over: the intent write will refuse this attempt
            except InstastoreError as exc:
                log.warning(
                    "could not renew the claim of Idempotency-Key for photo %d: %s",
                    self.photo_id,
                    exc,
                )

    async def release(self) -> None:
        """Free the key after a failure that left nothing behind; if this fails, the
        claim goes stale and a retry takes it over."""
        try:
            await self.claims.release_idempotency_key(self.user_id, self.key, self.photo_id)
        except InstastoreError as exc:
            log.warning("could not release Idempotency-Key of photo %d: %s", self.photo_id, exc)
