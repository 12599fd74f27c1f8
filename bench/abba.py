"""Ratios measured side by side: the service (A) and its reference (B) run in alternating
short rounds, and the result is the median of the per-round ratios A/B.

Background load on this shared machine (Cassandra compacting, a DataNode re-replicating,
other processes) comes and goes over seconds to minutes; a reference measured minutes
after the thing it is compared with can move a ratio by 2x between two runs of the same
commit. Within a round both sides see the same background, so the per-round ratio is
stable even when the absolute figures are not. The order alternates too (A B, B A, A B,
...), so neither side always runs on the warmer machine.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# One side of one round: run it for round number ``i``, return its figure (e.g. requests
# per second; higher is better, the ratio is A / B).
Side = Callable[[int], Awaitable[float]]


@dataclass
class Rounds:
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.a, self.b, strict=True)]

    def summary(self) -> dict[str, Any]:
        ratios = self.ratios
        return {
            "rounds": len(ratios),
            "median_ratio": round(statistics.median(ratios), 3),
            "min_ratio": round(min(ratios), 3),
            "max_ratio": round(max(ratios), 3),
            "median_a": round(statistics.median(self.a), 2),
            "median_b": round(statistics.median(self.b), 2),
            "per_round": {
                "a": [round(x, 2) for x in self.a],
                "b": [round(x, 2) for x in self.b],
                "ratio": [round(r, 3) for r in ratios],
            },
        }


async def alternate(
    a: Side, b: Side, rounds: int, progress: Callable[[str], None] = print
) -> Rounds:
    """Run ``rounds`` rounds of both sides, A first in even rounds and B first in odd ones."""
    if rounds < 1:
        raise ValueError("at least one round")
    result = Rounds()
    for i in range(rounds):
        for side in (a, b) if i % 2 == 0 else (b, a):
            figure = await side(i)
            (result.a if side is a else result.b).append(figure)
        progress(
            f"round {i + 1}/{rounds}: A {result.a[-1]:.1f}, B {result.b[-1]:.1f}, "
            f"ratio {result.a[-1] / result.b[-1]:.3f}"
        )
    return result
