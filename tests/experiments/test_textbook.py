"""`reproduce textbook` end to end on a small MNIST subset (its saved Result drawn by the atlas without a model),
and the speed measurement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convscope.experiments import get_experiment, run_experiment
from convscope.result import Result
from convscope.textbook import blas_threads, conv_speed_vs_torch
from convscope.textbook.speed import _openblas

from .atlas import figures_drawn


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


@pytest.mark.slow
def test_reproduce_textbook_small(tmp_path) -> None:
    import torch

    exp = get_experiment("textbook")
    cfg = exp.config(epochs=1, train_subset=640, test_subset=200, speed_repeats=2)
    result = run_experiment("textbook", tmp_path, cfg, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json", "result.npz"]  # no picture written
    assert not result.figures
    m = result.metrics
    for key in ("numpy_lenet_test_acc", "torch_lenet_test_acc", "numpy_lenet_train_seconds",
                "torch_lenet_train_seconds", "conv_fwd_bwd_ratio_vs_torch", "output_size_checks"):
        assert key in m
    assert m["output_size_formula_holds"] and m["output_size_max_abs_diff"] == 0
    assert m["pool_routing_checks"] == {"max": True, "mean": True} and m["pool_routing_max_abs_diff"] == 0
    assert m["lenet_grad_max_abs_diff_vs_autograd"] < 1e-10 and m["wide_conv_commutes_max_diff"] < 1e-12
    # Parameter counts against PyTorch's own layers and LeCun et al.'s C1 (156, docs/REFERENCE.md §2).
    conv2 = sum(p.numel() for p in torch.nn.Conv2d(6, 16, 5).parameters())
    assert m["params"] == 61_706 and m["conv_layer_params"] == {"conv1": 156, "conv2": conv2}
    assert (m["conv1_params"], m["conv2_params"]) == (156, conv2) == (result.published["conv1_params"].value,
                                                                     result.published["conv2_params"].value)
    assert m["weight_layers"] == 5
    # Same start, same batches: after 10 steps the two engines agree closely.
    assert abs(m["numpy_lenet_test_acc"] - m["torch_lenet_test_acc"]) < 0.05
    np.testing.assert_allclose(result.arrays["numpy_step_loss"][:5], result.arrays["torch_step_loss"][:5], rtol=1e-4)
    assert result.published["numpy_lenet_test_error_pct"].value == 0.95
    theory = [k for k, p in result.published.items() if p.kind == "expected (theory)"]
    assert "lenet_grad_max_abs_diff_vs_autograd" in theory and "numpy_lenet_test_error_pct" not in theory
    assert all(p.tolerance is not None for p in result.published.values())

    loaded = Result.load(tmp_path)
    assert loaded.metrics["params"] == 61_706 and loaded.provenance["data_checksum"]
    assert set(loaded.provenance["versions"]) >= {"numpy", "torch"} and loaded.provenance["seeds"] == [cfg.seed]
    a = loaded.arrays
    assert a["numpy_step_loss"].shape == a["torch_step_loss"].shape == (10,)  # 640 / 64 steps, one epoch
    assert a["numpy_conv1_weight"].shape == a["torch_conv1_weight"].shape == (6, 1, 5, 5)
    # The worked 1-D example, against NumPy's own convolution (which flips the kernel, as the chapter does).
    for mode, np_mode in (("narrow", "valid"), ("wide", "full"), ("same", "same")):
        np.testing.assert_allclose(a[f"conv1d_{mode}"], np.convolve(a["conv1d_x"], a["conv1d_w"], np_mode))
    assert all(v.dtype == np.float32 for v in a.values())

    assert figures_drawn(tmp_path, "textbook") == 4  # every figure, drawn from the saved arrays alone
