"""benchmarks/lab_e2e.py's bookkeeping: each run's own peak memory, and a skipped experiment fails it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lab_e2e.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_lab_e2e", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_run_reports_its_own_peak(bench, tmp_path):
    big = bench.run_measured([sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"],
                             tmp_path / "big.log")
    # This process's own high-water mark must not leak into the child's either (it would, forked from here).
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = bench.run_measured([sys.executable, "-c", "pass"], tmp_path / "small.log")
    del ballast
    assert big["exit_code"] == small["exit_code"] == 0
    assert big["peak_rss_mib"] >= 300 and small["peak_rss_mib"] < 100  # not an earlier child's peak, nor ours
    assert bench.run_measured([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "x.log")["exit_code"] == 3


def test_skipped_and_missing_experiments_are_found(bench, tmp_path):
    (tmp_path / "experiments" / "crelu").mkdir(parents=True)
    (tmp_path / "experiments" / "crelu" / "skipped.json").write_text(json.dumps({"reason": "no Fashion-MNIST"}))
    (tmp_path / "experiments" / "lenet5").mkdir()
    (tmp_path / "experiments" / "lenet5" / "result.json").write_text("{}")
    status = bench.experiment_status(tmp_path, ["crelu", "lenet5", "recos"])
    assert status == {"completed": ["lenet5"], "skipped": {"crelu": "no Fashion-MNIST"}, "missing": ["recos"]}


def test_a_skipped_experiment_fails_the_benchmark(bench, monkeypatch, capsys):
    # A stand-in lab that skips its one experiment, as the real one does when data cannot be had.
    fake = ("import json, pathlib, sys; d = pathlib.Path(sys.argv[1]) / 'experiments' / 'lenet5'; "
            "d.mkdir(parents=True, exist_ok=True); (d / 'skipped.json').write_text(json.dumps({'reason': 'offline'}))")
    monkeypatch.setattr(bench, "QUICK_LAB", fake)
    assert bench.main(["--quick"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["complete"] is False and out["first_run"]["experiments"]["skipped"] == {"lenet5": "offline"}
    assert any("skipped lenet5 (offline)" in f for f in out["failures"])
