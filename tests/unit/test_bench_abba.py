"""The bench's side-by-side ratios (bench/abba.py): rounds alternate which side goes
first, each round's ratio pairs the figures of that round, and the result is their
median, so a slowdown that hits one round hits both of its sides."""

from __future__ import annotations

import pytest

from bench import abba


async def test_rounds_alternate_and_the_median_of_per_round_ratios_is_reported():
    order: list[str] = []
    background = [1.0, 1.0, 0.25, 0.25, 1.0, 1.0]  # load that quarters both sides of round 1

    def side(name: str, base: float):
        async def run(i: int) -> float:
            order.append(f"{name}{i}")
            return base * background[len(order) - 1]

        return run

    rounds = await abba.alternate(side("a", 30.0), side("b", 20.0), 3, lambda _: None)
    assert order == ["a0", "b0", "b1", "a1", "a2", "b2"]
    assert rounds.ratios == [1.5, 1.5, 1.5]
    summary = rounds.summary()
    assert (summary["median_ratio"], summary["rounds"]) == (1.5, 3)
    assert summary["per_round"]["a"] == [30.0, 7.5, 30.0]


async def test_no_rounds_is_refused():
    async def side(i: int) -> float:
        return 1.0

    with pytest.raises(ValueError):
        await abba.alternate(side, side, 0)
