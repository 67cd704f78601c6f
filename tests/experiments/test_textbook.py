"""`reproduce textbook` end to end on a small MNIST subset, its figures, and the speed measurement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convscope.experiments import get_experiment, run_experiment
from convscope.report import figures_textbook
from convscope.result import Result
from convscope.textbook import blas_threads, conv1d, conv_speed_vs_torch, mode_padding
from convscope.textbook.speed import _openblas


def test_conv_speed_reports_every_layer_and_restores_threads() -> None:
    import torch

    threads = torch.get_num_threads()
    speed = conv_speed_vs_torch(batch=4, repeats=2, threads=1)
    assert set(speed["layers"]) == {"conv1", "conv2"}
    for row in speed["layers"].values():
        assert row["numpy_ms"] > 0 and row["torch_ms"] > 0
        assert row["ratio"] == pytest.approx(row["numpy_ms"] / row["torch_ms"])
        assert row["ratio_no_input_grad"] > 0
    assert speed["worst_ratio"] == max(r["ratio"] for r in speed["layers"].values())
    assert torch.get_num_threads() == threads
    json.dumps(speed)  # the benchmark prints it


def test_blas_threads_sets_and_restores() -> None:
    fns = _openblas()
    if fns is None:  # pragma: no cover - a numpy without its bundled OpenBLAS
        with blas_threads(1) as ok:
            assert ok is False
        return
    _, get = fns
    before = get()
    with blas_threads(1) as ok:
        assert ok and get() == 1
    assert get() == before


def test_figures_are_pngs() -> None:
    x, w = np.arange(1.0, 6), np.array([1.0, -1])
    modes = ("narrow", "wide", "same")
    png = figures_textbook.conv_modes_1d(x, w, {m: conv1d(x, w, mode=m) for m in modes},
                                         {m: mode_padding(m, 2, flipped=True) for m in modes})
    curves = figures_textbook.numpy_vs_torch_curves({"a": np.linspace(2, 0.1, 300)}, {"a": np.array([0.9, 0.95])},
                                                    0.99)
    bars = figures_textbook.conv_speed_bars({"conv1": {"numpy_ms": 2.0, "torch_ms": 1.0, "ratio": 2.0}}, 3)
    filters = figures_textbook.filters_side_by_side({"a": np.ones((6, 1, 5, 5)), "b": -np.ones((6, 1, 5, 5))})
    for data in (png, curves, bars, filters):
        assert data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_reproduce_textbook_small(tmp_path) -> None:
    exp = get_experiment("textbook")
    cfg = exp.config(epochs=1, train_subset=640, test_subset=200, speed_repeats=2)
    result = run_experiment("textbook", tmp_path, cfg, progress=False)
    m = result.metrics
    for key in ("numpy_lenet_test_acc", "torch_lenet_test_acc", "numpy_lenet_train_seconds",
                "torch_lenet_train_seconds", "conv_fwd_bwd_ratio_vs_torch", "output_size_checks"):
        assert key in m
    assert m["output_size_formula_holds"] and m["pool_routing_checks"] == {"max": True, "mean": True}
    assert m["lenet_grad_max_abs_diff_vs_autograd"] < 1e-10 and m["wide_conv_commutes_max_diff"] < 1e-12
    assert m["params"] == 61_706 and m["conv_layer_params"] == {"conv1": 156, "conv2": 2416}
    assert m["weight_layers"] == 5
    # Same start, same batches: after 10 steps the two engines agree closely.
    assert abs(m["numpy_lenet_test_acc"] - m["torch_lenet_test_acc"]) < 0.05
    np.testing.assert_allclose(result.arrays["numpy_step_loss"][:5], result.arrays["torch_step_loss"][:5], rtol=1e-4)
    assert result.published["numpy_lenet_test_error_pct"].value == 0.95
    for name in result.figures.values():
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    loaded = Result.load(tmp_path)
    assert loaded.metrics["params"] == 61_706 and loaded.provenance["data_checksum"]
    assert set(loaded.provenance["versions"]) >= {"numpy", "torch"}
