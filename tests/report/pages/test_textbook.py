"""The `textbook` page: figures drawn from a saved Result alone, a summary from its numbers, headline verdicts.

The Result is built the way `experiments/textbook.py` saves it (same keys, shapes and dtypes, the
experiment's own published figures and tolerances), saved and loaded back; the worked 1-D example is
computed here with `np.convolve`, not the engine. The end-to-end test in tests/experiments/test_textbook.py
renders a real tiny run.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from convscope.experiments.textbook import _published
from convscope.report import render_atlas
from convscope.report.pages import page_for
from convscope.report.pages import textbook as page_module
from convscope.result import Result
from convscope.textbook import conv1d, mode_padding

from .render import decode

FIGURES = 4  # worked 1-D example, NumPy vs PyTorch curves, conv speed, conv1 filters


def textbook_result(**metrics: object) -> Result:
    """A Result shaped as `reproduce textbook` saves it, with round numbers to find in the summary."""
    rng = np.random.default_rng(0)
    x, w = np.array([1.0, 2, 3, -1, 0, 2, 1]), np.array([1.0, 0, -2])
    worked = {mode: np.convolve(x, w, np_mode) for mode, np_mode in (("narrow", "valid"), ("wide", "full"),
                                                                     ("same", "same"))}
    steps = 4 * 938
    loss = 2.3 * np.exp(-np.arange(steps) / 300) + 0.05 + 0.02 * rng.random(steps)
    m = {
        "numpy_lenet_test_acc": 0.9871, "numpy_lenet_test_error_pct": 1.29, "torch_lenet_test_acc": 0.9852,
        "numpy_minus_torch_acc": 0.0019, "numpy_lenet_train_seconds": 45.0, "torch_lenet_train_seconds": 35.0,
        "numpy_over_torch_train_time": 45 / 35, "numpy_over_torch_train_cpu_time": 1.3,
        "params": 61706, "numpy_lenet_test_acc_by_epoch": [0.975, 0.981, 0.984, 0.9871],
        "torch_lenet_test_acc_by_epoch": [0.974, 0.98, 0.983, 0.9852], "epochs": 4,
        "conv_fwd_bwd_ratio_vs_torch": 1.84, "conv_fwd_bwd_ratio_by_layer": {"conv1": 1.5, "conv2": 2.1},
        "conv_fwd_bwd_ms": {"conv1 numpy": 3.0, "conv1 torch": 2.0, "conv2 numpy": 6.3, "conv2 torch": 3.0},
        "conv_ratio_no_input_grad": {"conv1": 1.1, "conv2": 1.6}, "conv_wall_ratio_vs_torch": 1.8,
        "conv_speed_goal": 3.0, "conv_speed_goal_met": True,
        "output_size_checks": {"narrow (M=7, K=3)": "5 (formula 5)", "wide (M=7, K=3)": "9 (formula 9)",
                               "same (M=7, K=3)": "7 (formula 7)", "stride 2, P=1": "4 (formula 4)"},
        "output_size_max_abs_diff": 0, "output_size_formula_holds": True, "conv_equals_corr_rot180_max_diff": 0.0,
        "wide_conv_commutes_max_diff": 8.9e-16, "lenet_grad_max_abs_diff_vs_autograd": 3.5e-17,
        "pool_routing_checks": {"max": True, "mean": True}, "pool_routing_max_abs_diff": 0.0,
        "conv_layer_params": {"conv1": 156, "conv2": 2416}, "conv1_params": 156, "conv2_params": 2416,
        "weight_layers": 5, "conv1d_paddings": {"narrow": [0, 0], "wide": [2, 2], "same": [1, 1]},
    }
    m.update(metrics)
    arrays = {
        "numpy_step_loss": loss.astype(np.float32), "torch_step_loss": (loss * 1.01).astype(np.float32),
        "numpy_conv1_weight": rng.normal(size=(6, 1, 5, 5)).astype(np.float32),
        "torch_conv1_weight": rng.normal(size=(6, 1, 5, 5)).astype(np.float32),
        "conv1d_x": x.astype(np.float32), "conv1d_w": w.astype(np.float32),
        **{f"conv1d_{mode}": out.astype(np.float32) for mode, out in worked.items()},
    }
    return Result(name="textbook", title="The convolution chapter in NumPy: LeNet-5 from scratch", metrics=m,
                  published=_published(), arrays=arrays, provenance={"seeds": [0]})


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    textbook_result().save(tmp_path)
    return tmp_path


def rows(r: Result) -> dict[str, object]:
    page = page_for("textbook")
    return {key: page.row(r, key, pub) for key, pub in r.published.items()}


def test_every_figure_is_drawn_from_the_saved_result(saved: Path) -> None:
    figures = page_for("textbook").figures(Result.load(saved))
    assert len(figures) == FIGURES
    for fig in figures:
        img = decode(fig.png)
        assert img.shape[0] > 100 and img.shape[1] > 300, fig.caption
        assert img[..., :3].std() > 0.02, fig.caption
        assert len(fig.caption) > 80 and fig.caption.endswith(".")


def test_summary_states_the_measured_numbers(saved: Path) -> None:
    text = page_for("textbook").summary(Result.load(saved))
    assert len(re.findall(r"(?<!et al)\.(?:\s|$)", text)) == 3  # three sentences
    for said in ("3.5e-17", "all 4 worked cases follow", "for 4 epochs", "98.71 %", "98.52 %", "+0.19 points",
                 "1.29 % test error is above the 0.95 %", "1.84×", "within the project's goal of ≤ 3×", "1.29×"):
        assert said in text, said
    assert "gradients match" in text


def test_summary_turns_when_the_numbers_do() -> None:
    r = textbook_result(lenet_grad_max_abs_diff_vs_autograd=1e-3, output_size_max_abs_diff=1,
                        numpy_lenet_test_error_pct=0.8, numpy_lenet_test_acc=0.992, conv_fwd_bwd_ratio_vs_torch=3.4,
                        conv_speed_goal_met=False, epochs=1)
    text = page_for("textbook").summary(r)
    assert "do not match" in text and "do not all follow" in text and "for 1 epoch," in text
    assert "0.80 % test error is below the 0.95 %" in text and "3.40×" in text and "outside the project's goal" in text


def test_headline_verdicts_within_and_outside_tolerance(saved: Path) -> None:
    r = Result.load(saved)
    r.metrics["numpy_lenet_test_error_pct"] = 1.1  # within LeCun's 0.95 % ± 0.3
    ok = rows(r)
    assert all(row.status == "ok" for row in ok.values()), {k: row.verdict for k, row in ok.items()}
    assert ok["numpy_minus_torch_acc"].measured == "0.19 %" and ok["numpy_minus_torch_acc"].published == "0 %"
    assert ok["numpy_lenet_test_error_pct"].kind == "published" and ok["conv1_params"].kind == "expected (theory)"
    assert ok["conv2_params"].measured == "2,416"
    r.metrics.update(numpy_lenet_test_error_pct=1.29, numpy_minus_torch_acc=-0.012, conv1_params=150,
                     lenet_grad_max_abs_diff_vs_autograd=1e-3, output_size_max_abs_diff=1,
                     wide_conv_commutes_max_diff=1e-9, params=70000)
    off = rows(r)
    for key in ("numpy_lenet_test_error_pct", "numpy_minus_torch_acc", "conv1_params",
                "lenet_grad_max_abs_diff_vs_autograd", "output_size_max_abs_diff", "wide_conv_commutes_max_diff",
                "params"):
        assert off[key].status == "off" and off[key].verdict.startswith("deviates"), key
    assert "+0.34" in off["numpy_lenet_test_error_pct"].verdict
    assert off["weight_layers"].status == "ok"


def test_the_atlas_shows_summary_headline_and_figures(saved: Path) -> None:
    index = render_atlas(saved)
    html = (index.parent / "exp-textbook.html").read_text(encoding="utf-8")
    assert len(re.findall(r'src="img/exp-textbook/\d+\.png"', html)) == FIGURES
    assert "98.71 %" in html and "reproduces" in html and "LeCun" in html


def test_figure_functions_are_pngs() -> None:
    x, w = np.arange(1.0, 6), np.array([1.0, -1])
    modes = ("narrow", "wide", "same")
    png = page_module.conv_modes_1d(x, w, {m: conv1d(x, w, mode=m) for m in modes},
                                    {m: mode_padding(m, 2, flipped=True) for m in modes})
    curves = page_module.numpy_vs_torch_curves({"a": np.linspace(2, 0.1, 300)}, {"a": np.array([0.9, 0.95])}, 0.99)
    bars = page_module.conv_speed_bars({"conv1": {"numpy_ms": 2.0, "torch_ms": 1.0, "ratio": 2.0}}, 3)
    filters = page_module.filters_side_by_side({"a": np.ones((6, 1, 5, 5)), "b": -np.ones((6, 1, 5, 5))})
    for data in (png, curves, bars, filters):
        assert decode(data).ndim == 3
    one, two = decode(page_module.filters_side_by_side({"a": np.ones((6, 1, 5, 5))})), decode(filters)
    assert two.shape[0] > one.shape[0]  # one row per net
