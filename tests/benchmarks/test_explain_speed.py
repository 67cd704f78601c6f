"""benchmarks/explain_speed.py's verdict: interleaved rounds, paired ratios, "slower" only beyond the noise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "explain_speed.py"
spec = importlib.util.spec_from_file_location("bench_explain_speed", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def fake_clock(monkeypatch, times: dict[str, list[float]]) -> list[str]:
    """`sample` returns the next scripted time of the side called; the order of calls is recorded."""
    order: list[str] = []
    monkeypatch.setattr(bench, "calls_per_sample", lambda fn, least=0.25: 1)

    def sample(fn, calls):
        order.append(fn.__name__)
        return times[fn.__name__].pop(0)
    monkeypatch.setattr(bench, "sample", sample)
    return order


def ours():
    pass


def theirs():
    pass


def test_rounds_alternate_and_ratios_are_paired(monkeypatch):
    # A load spike in rounds 2-3 slows both sides alike: paired ratios stay at 0.5, unpaired medians would not.
    order = fake_clock(monkeypatch, {"ours": [1.0, 5.0, 5.0, 1.0], "theirs": [2.0, 10.0, 10.0, 2.0]})
    row = bench.paired_rounds(ours, theirs, rounds=4)
    assert order == ["ours", "theirs", "theirs", "ours", "ours", "theirs", "theirs", "ours"]
    assert row["ratio"] == 0.5 and row["ratio_quartiles"] == [0.5, 0.5] and row["verdict"] == "faster"


@pytest.mark.parametrize(("mine", "verdict"), [
    ([1.1, 1.2, 1.15, 1.3, 1.12], "slower"),         # every round slower
    ([0.9, 1.1, 1.0, 1.05, 0.95], "within noise"),    # the quartiles straddle 1
    ([0.8, 0.9, 0.7, 0.85, 0.95], "faster"),
])
def test_verdict_needs_the_quartiles_on_one_side_of_one(monkeypatch, mine, verdict):
    fake_clock(monkeypatch, {"ours": list(mine), "theirs": [1.0] * 5})
    assert bench.paired_rounds(ours, theirs, rounds=5)["verdict"] == verdict
