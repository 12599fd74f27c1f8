"""``storage.ports.settle``: a write whose outcome is unknown is tried again; once one
try was unknown, the outcome stays unknown even if a later try fails outright."""

from __future__ import annotations

import pytest

from instastore.errors import OutcomeUnknown, Unavailable
from instastore.storage.ports import settle

NO_WAIT = (0.0, 0.0)


def write_failing(*failures: Exception):
    """A write that raises ``failures`` in turn, then answers how many tries it took."""
    tries = []

    async def write() -> int:
        tries.append(1)
        if len(tries) <= len(failures):
            raise failures[len(tries) - 1]
        return len(tries)

    return write


async def test_an_unknown_outcome_is_tried_again_until_known():
    assert await settle("w", write_failing(OutcomeUnknown("t"), OutcomeUnknown("t")), NO_WAIT) == 3


async def test_an_outcome_unknown_after_every_try_stays_unknown():
    with pytest.raises(OutcomeUnknown):
        await settle("w", write_failing(*[OutcomeUnknown("t")] * 3), NO_WAIT)


async def test_a_refusal_before_any_unknown_try_is_a_plain_unavailable():
    with pytest.raises(Unavailable) as refused:
        await settle("w", write_failing(Unavailable("down")), NO_WAIT)
    assert type(refused.value) is Unavailable


async def test_a_refusal_after_an_unknown_try_leaves_the_outcome_unknown():
    with pytest.raises(OutcomeUnknown):  # the first try may have landed
        await settle("w", write_failing(OutcomeUnknown("t"), Unavailable("down")), NO_WAIT)
