"""The `parts` page: figures drawn from a saved Result alone, a summary from its numbers, headline verdicts.

The Result is built the way `experiments/parts.py` saves it (same keys, shapes and dtypes, the
experiment's own published figures and tolerances), saved and loaded back; the end-to-end test in
tests/experiments/test_parts.py renders a real tiny run.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from convscope.experiments.parts import _published
from convscope.report import render_atlas
from convscope.report.pages import page_for
from convscope.report.pages import parts as page_module
from convscope.result import Result

from .render import decode

FIGURES = 9  # filters, edge survival, pooling example, pooling under noise, normalisation, linear collapse,
# noise injection, filter visualisation, depth


def parts_result(**metrics: object) -> Result:
    """A Result shaped as `reproduce parts` saves it, with round numbers to find in the summary."""
    rng = np.random.default_rng(0)
    side, k = 20, 5
    curves = np.exp(-np.linspace(0, 2, 60))[None, None] * np.ones((4, 2, 1)) * 2.3
    curves[1, 1, 10:] = np.nan  # raw pixels at the larger rate diverge at step 10
    m = {
        "planted_filter_max_abs_diff": 3.2e-7, "filter_names": ["sobel_x", "sobel_y", "gaussian", "laplacian"],
        "filter_signed": [True, True, False, True], "sample_images": ["camera", "coffee"], "pool_size": 2,
        "edge_noise_sigmas": [0.0, 0.2, 0.4], "edge_survival_max": [1.0, 0.8, 0.6],
        "edge_survival_avg": [1.0, 0.7, 0.4], "pooling_example_sigma": 0.2,
        "test_noise_sigmas": [0.0, 0.25, 0.5], "acc_maxpool_under_noise": [0.98, 0.9, 0.71],
        "acc_avgpool_under_noise": [0.975, 0.85, 0.52],
        "norm_variants": ["unscaled", "raw", "standardised", "batchnorm"], "norm_lrs": [1e-3, 1e-1],
        "norm_hidden": 64, "norm_scale_range": [0.01, 100.0], "norm_target_loss": 0.5, "steps_to_loss_unscaled": 40,
        "steps_to_loss_raw": None, "steps_to_loss_standardised": 123, "steps_to_loss_batchnorm": 45,
        "linear_collapse_max_abs_diff": 2.0e-6, "acc_with_activation": 0.985, "acc_without_activation": 0.914,
        "train_noise_sigma": 0.3, "dropout": 0.3, "acc_clean_trained_clean": 0.98, "acc_noise_trained_clean": 0.975,
        "acc_clean_trained_under_noise": [0.98, 0.9, 0.71], "acc_noise_trained_under_noise": [0.975, 0.95, 0.88],
        "featurevis_layers": ["features.conv1", "features.conv2"], "featurevis_steps": 128, "featurevis_fft": True,
        "featurevis_transforms": True,
        "featurevis_l2": 0.01, "depth_by_model": {"lenet5": 5, "alexnet": 8, "vgg16": 16}, "depth_vgg16": 16,
        "depth_lenet5": 5,
    }
    m.update(metrics)
    edges = rng.random((side + 4, side + 4)).astype(np.float32)
    example = {"noisy": rng.random((side + 6, side + 6)), "clean_edges": edges, "noisy_edges": edges + 0.1,
               "clean_max": edges[::2, ::2], "noisy_max": edges[::2, ::2], "clean_avg": edges[1::2, ::2],
               "noisy_avg": edges[::2, 1::2]}
    arrays = {
        "filter_images": rng.random((2, side, side)).astype(np.float32),
        "filter_responses": rng.normal(size=(2, 4, side, side)).astype(np.float16),
        "kernels": rng.normal(size=(4, k, k)).astype(np.float32),
        **{f"pooling_example_{key}": v.astype(np.float32) for key, v in example.items()},
        "norm_loss_curves": curves.astype(np.float32), "norm_pixel_scale": rng.random((1, 28, 28)).astype(np.float32),
        "linear_collapse_A": rng.normal(size=(10, 1, 28, 28)).astype(np.float32),
        "linear_collapse_b": rng.normal(size=10).astype(np.float32),
        "linear_collapse_outputs": rng.normal(size=(50, 10)).astype(np.float32),
        "featurevis_conv1_channel": rng.random((6, 1, 28, 28)).astype(np.float32),
        "featurevis_conv1_neuron": rng.random((6, 1, 28, 28)).astype(np.float32),
        "featurevis_conv2_channel": rng.random((16, 1, 28, 28)).astype(np.float32),
        "featurevis_conv2_neuron": rng.random((16, 1, 28, 28)).astype(np.float32),
    }
    arrays["linear_collapse_predicted"] = arrays["linear_collapse_outputs"] + 1e-6
    return Result(name="parts", title="The role of each part of a CNN", metrics=m, published=_published(),
                  arrays=arrays, provenance={"seeds": [0]})


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    parts_result().save(tmp_path)
    return tmp_path


def rows(r: Result) -> dict[str, object]:
    page = page_for("parts")
    return {key: page.row(r, key, pub) for key, pub in r.published.items()}


def test_every_figure_is_drawn_from_the_saved_result(saved: Path) -> None:
    r = Result.load(saved)
    assert r.arrays["filter_responses"].dtype == np.float16  # the round trip keeps what the figures read
    figures = page_for("parts").figures(r)
    assert len(figures) == FIGURES
    for fig in figures:
        img = decode(fig.png)
        assert img.shape[0] > 150 and img.shape[1] > 300, fig.caption
        assert img[..., :3].std() > 0.02, fig.caption  # something is drawn, not a blank canvas
        assert len(fig.caption) > 80 and fig.caption.endswith(".")
    featurevis = next(f.caption for f in figures if f.caption.startswith("The input each conv filter"))
    assert "(128 Adam steps, a Fourier-space image with a 1/f spectrum, Lucid's random pad" in featurevis


def test_summary_states_the_measured_numbers(saved: Path) -> None:
    text = page_for("parts").summary(Result.load(saved))
    assert len(re.findall(r"\.(?:\s|$)", text)) == 3  # three sentences
    for said in ("3.2e-07", "2.0e-06", "91.4 %", "98.5 %", "σ = 0.5", "71.0 %", "52.0 %", "88.0 %",
                 "standardised in 123 steps", "batchnorm in 45 steps", "raw never within 60 steps", "0.5"):
        assert said in text, said
    assert "matches scipy" in text and "is one affine map" in text
    assert "max pooling holds up better" in text and "more than the 71.0 %" in text


def test_summary_turns_when_the_numbers_do() -> None:
    r = parts_result(planted_filter_max_abs_diff=0.5, linear_collapse_max_abs_diff=0.2,
                     acc_avgpool_under_noise=[0.97, 0.9, 0.8], acc_noise_trained_under_noise=[0.97, 0.8, 0.6],
                     steps_to_loss_standardised=None)
    text = page_for("parts").summary(r)
    assert "differs from scipy" in text and "is not one affine map" in text
    assert "average pooling holds up better" in text and "less than the 71.0 %" in text
    assert "standardised never" in text


def test_headline_verdicts_within_and_outside_tolerance(saved: Path) -> None:
    r = Result.load(saved)
    ok = rows(r)
    assert {k: row.status for k, row in ok.items()} == dict.fromkeys(
        ("planted_filter_max_abs_diff", "linear_collapse_max_abs_diff", "depth_vgg16", "depth_lenet5"), "ok")
    assert ok["planted_filter_max_abs_diff"].kind == "expected (theory)" and ok["depth_vgg16"].kind == "published"
    assert ok["depth_vgg16"].figure == "VGG-16: counted layers" and ok["depth_vgg16"].measured == "16"
    # A flipped kernel, a network with a kink, a miscount: each off by far more than rounding.
    r.metrics.update(planted_filter_max_abs_diff=2e-3, linear_collapse_max_abs_diff=0.05, depth_vgg16=15,
                     depth_lenet5=7)
    off = rows(r)
    assert all(row.status == "off" and row.verdict.startswith("deviates") for row in off.values())
    assert "+2" in off["depth_lenet5"].verdict


def test_a_result_without_arrays_draws_the_figures_its_metrics_allow() -> None:
    r = parts_result()
    r.arrays = {}
    captions = [f.caption for f in page_for("parts").figures(r)]
    assert len(captions) == 4  # edge survival, pooling and noise training under noise, depth
    assert captions[-1].startswith("Counted depth") and "vgg16: 16" in captions[-1]


def test_the_atlas_shows_summary_headline_and_figures(saved: Path) -> None:
    index = render_atlas(saved)
    html = (index.parent / "exp-parts.html").read_text(encoding="utf-8")
    assert len(re.findall(r'src="img/exp-parts/\d+\.png"', html)) == FIGURES
    assert "91.4 %" in html and "reproduces" in html and "expected (theory)" in html
    assert len(list((index.parent / "img" / "exp-parts").glob("*.png"))) == FIGURES


def test_figure_functions_handle_edge_cases() -> None:
    few = decode(page_module.depth_bars({"a": 3, "b": 5}, {}))
    many = decode(page_module.depth_bars({f"m{i}": i + 1 for i in range(12)}, {"m3": 4}))
    assert many.shape[0] > few.shape[0]  # one bar per model
    diverged = np.full((2, 3, 50), np.nan)
    diverged[0, 0] = np.linspace(2, 0.1, 50)
    for png in (page_module.loss_curves(diverged, ["a", "b"], [0.1, 1.0, 10.0], 0.5),
                page_module.noise_curves([0, 1], {"only": [1.0, 0.5]}, "y", title="t", percent=True),
                page_module.image_grid({"one": np.zeros((1, 1, 8, 8))}),
                page_module.filter_responses(np.zeros((1, 6, 6)), np.zeros((1, 1, 6, 6)), ["k"], np.zeros((1, 3, 3)),
                                             [True], ["img"])):
        assert decode(png).ndim == 3
