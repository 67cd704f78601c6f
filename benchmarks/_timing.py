"""Timing shared by the benchmarks: loops long enough for millisecond calls, and interleaved rounds.

A machine's load drifts by more than many differences measured here, so sides that are compared are timed in
rounds, each round timing every side once in an order that rotates from round to round: drift falls on all
sides alike, and ratios are taken round by round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def calls_per_sample(fn: Callable[[], Any], least: float = 0.25) -> int:
    """How many back-to-back calls make one timed sample last at least `least` seconds (millisecond calls
    are timed in loops, so timer resolution and scheduler ticks do not dominate)."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-6)
    return max(1, min(200, int(least / once) + 1))


def sample(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call of `calls` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def interleaved(sides: dict[str, Callable[[], Any]], rounds: int, calls: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each side in each of `rounds` rounds; round r times the sides in their order
    rotated by r."""
    names = list(sides)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            times[n].append(sample(sides[n], calls))
    return times
