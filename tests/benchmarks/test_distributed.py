"""benchmarks/distributed.py's scaling figures: speed-up t(1)/t(N) and efficiency t(1)/(N·t(N))."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "distributed.py"
spec = importlib.util.spec_from_file_location("bench_distributed", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_scaling_efficiency():
    assert bench.scaling(10.0, 5.0, 2) == {"speedup": 2.0, "efficiency": 1.0}  # perfect
    assert bench.scaling(10.0, 10.0, 2) == {"speedup": 1.0, "efficiency": 0.5}  # no gain on 2 processes
    assert bench.scaling(0.0, 5.0, 2) == {"speedup": None, "efficiency": None}
