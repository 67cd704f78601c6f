"""benchmarks/_timing.py: interleaved rounds rotate the order of the sides, so drift falls on all alike."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "_timing.py"
spec = importlib.util.spec_from_file_location("bench_timing", SCRIPT)
timing = importlib.util.module_from_spec(spec)
spec.loader.exec_module(timing)


def test_rounds_rotate_the_order_and_time_each_side_once_a_round(monkeypatch):
    order: list[str] = []
    clock = iter(range(100))
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: float(next(clock))))
    sides = {name: (lambda name=name: order.append(name)) for name in "abc"}
    times = timing.interleaved(sides, rounds=4, calls=2)
    assert order == ["a", "a", "b", "b", "c", "c", "b", "b", "c", "c", "a", "a", "c", "c", "a", "a", "b", "b",
                     "a", "a", "b", "b", "c", "c"]
    assert times == {n: [0.5] * 4 for n in "abc"}  # each sample: two ticks of the clock over two calls
