"""benchmarks/featurevis_speed.py at tiny settings: one JSON object, both sides timed, the same images."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "featurevis_speed.py"
spec = importlib.util.spec_from_file_location("bench_featurevis_speed", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_a_tiny_run_prints_one_comparable_result(capsys):
    assert bench.main(["--quick", "--steps", "3", "--repeats", "2", "--models", "lenet5"]) == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    r = out["results"]["lenet5"]
    assert list(out["results"]) == ["lenet5"] and r["channels"] == 4 and r["steps"] == 3
    assert len(r["runs_s"]["batched"]) == len(r["runs_s"]["one_at_a_time"]) == 2
    assert r["batched_s"] == min(r["runs_s"]["batched"]) and r["speedup"] > 0
    # same seeds and transformations on both sides: the same images and objective, to rounding
    assert r["max_abs_image_diff"] < 1e-5 and r["max_abs_objective_diff"] < 1e-5
    assert r["objective_reached_batched"]["mean"] > r["objective_at_start"]["mean"]
    assert out["met"] is (r["speedup"] >= 5) and "differences" in out and out["quick"] is True
