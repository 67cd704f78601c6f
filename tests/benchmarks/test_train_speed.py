"""benchmarks/train_speed.py's common rule: the first check reaching the target, per seed, every seed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_speed.py"
spec = importlib.util.spec_from_file_location("bench_train_speed", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_first_crossing_and_every_seed_rule():
    curve = [{"epoch": 1, "seconds": 4.0, "test_acc": 0.985}, {"epoch": 2, "seconds": 8.0, "test_acc": 0.9901},
             {"epoch": 3, "seconds": 12.0, "test_acc": 0.989}]
    hit = bench.first_crossing(curve, 0.99)
    assert hit["reached"] and hit["seconds_to_target"] == 8.0 and hit["epochs_to_target"] == 2
    assert hit["test_acc_at_target"] == 0.9901 and hit["final_test_acc"] == 0.989
    miss = bench.first_crossing(curve[:1], 0.99)
    assert not miss["reached"] and miss["seconds_to_target"] is None
    # One seed at 98.5 % means the side did not reach the target, whatever the mean says.
    summary = bench.summarize([hit, miss])
    assert summary == {"all_seeds_reached": False, "seconds_to_target": None, "max_seconds_to_target": None,
                       "seeds_reached": 1}
    assert bench.summarize([hit, hit])["seconds_to_target"] == 8.0
