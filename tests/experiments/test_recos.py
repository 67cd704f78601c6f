"""`reproduce recos` end to end on a tiny MNIST subset: every metric, per-seed figure, array and provenance entry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convscope.config import TrainConfig, resolve
from convscope.experiments import get_experiment, run_experiment
from convscope.experiments.recos import RecosConfig
from convscope.report.pages.recos import RecosPage
from convscope.result import Result

TRAINED = ["acc_original", "acc_inverted", "acc_negated_original", "acc_negated_inverted",
           "both_polarity_acc_original", "both_polarity_acc_inverted", "crelu_first_acc_original",
           "crelu_first_acc_inverted", "acc_linear", "acc_background"]
EXACT = ["exact_swap_mismatches", "linear_collapse_max_abs_diff"]


def test_config_resolves_from_the_command_line_and_has_a_lab_size():
    cfg = resolve(RecosConfig, overrides=["seeds=0,1", "train.epochs=1", "knn_k=3"])
    assert cfg.seeds == [0, 1] and cfg.train.epochs == 1 and cfg.knn_k == 3 and cfg.train.model == "lenet5"
    assert RecosConfig.lab().seeds == [0]
    assert get_experiment("recos").config is RecosConfig


@pytest.mark.slow
def test_tiny_reproduction_saves_every_figure_number_and_array(tmp_path, mnist_small):
    cfg = RecosConfig(seeds=[0, 1], anchor_images=10, cluster_images=100, linear_check_images=50,
                      train=TrainConfig(epochs=1, batch_size=50, train_subset=300, test_subset=100, device="cpu"))
    result = run_experiment("recos", tmp_path, cfg, progress=False)
    m, seeds = result.metrics, result.by_seed
    for key in TRAINED + EXACT:
        assert key in m and len(seeds[key]) == 2, key
    for key in TRAINED:  # the mean over seeds, computed here
        assert m[key] == pytest.approx(np.mean(seeds[key]))
    assert m["exact_swap_mismatches"] == sum(seeds["exact_swap_mismatches"]) == 0
    for i in range(2):  # the exact swap exchanges the two accuracies, seed by seed
        assert seeds["acc_exact_swap_original"][i] == pytest.approx(seeds["acc_inverted"][i])
        assert seeds["acc_exact_swap_inverted"][i] == pytest.approx(seeds["acc_original"][i])
    assert m["linear_collapse_max_abs_diff"] == max(seeds["linear_collapse_max_abs_diff"]) <= 1e-5
    assert m["acc_linear_map"] == pytest.approx(m["acc_linear"], abs=0.011)  # the map predicts as the net does
    assert m["anchor_centred_flip_max_err"] < 1e-9
    assert len(m["layers"]) == len(m["knn_acc_by_layer"]) == len(m["scatter_ratio_by_layer"]) == 12
    assert m["layers"][0] == "input"
    assert len(m["background_similarity_by_layer"]) == len(m["background_layers"]) == 5

    # An experiment computes; it draws nothing (docs/DESIGN.md).
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["metrics"] == json.loads(json.dumps(m)) and saved["figures"] == {}
    assert not list(tmp_path.rglob("*.png"))
    prov = saved["provenance"]
    assert prov["seeds"] == [0, 1] and prov["data_checksum"] and prov["versions"]["torch"]
    assert prov["config"]["train"]["train_subset"] == 300 and set(prov["train_seconds"]) >= {"clean", "linear"}
    gen = prov["background_generator"]
    assert gen["n"] == 10 and len(gen["params"]["sigma"]) == 10 and gen["alpha"] == 0.5
    assert saved["published"]["acc_inverted"]["value"] == 0.3736  # docs/REFERENCE.md §3
    assert saved["published"]["exact_swap_mismatches"]["kind"] == "expected (theory)"

    loaded = Result.load(tmp_path)
    a = loaded.arrays
    assert all(v.dtype == np.float32 for v in a.values()) and sum(v.nbytes for v in a.values()) < 1_000_000
    assert a["conv1_weight_by_seed"].shape == (2, 6, 1, 5, 5) and a["linear_A"].shape == (10, 784)
    assert a["knn_acc_by_seed_layer"].shape == (2, 12)
    assert a["knn_acc_by_seed_layer"][0, 0] == a["knn_acc_by_seed_layer"][1, 0]  # the input is every seed's
    cos = a["anchor_cosines"]  # (raw/centred, original/inverted, patches, anchors)
    assert cos.shape[:2] == (2, 2) and cos.shape[3] == 6 and np.isfinite(cos).all()
    np.testing.assert_allclose(cos[1, 1], -cos[1, 0], atol=1e-6)  # a centred patch of 1 − x is minus x's
    for layer in ("conv1", "conv2"):  # after ReLU is the conv's output with the negative part removed
        before, after = a[f"background_maps.features.{layer}"], a[f"background_maps.features.relu{layer[-1]}"]
        np.testing.assert_array_equal(after, np.maximum(before, 0))
    # Each gallery image is a test digit x composited on texture k: e = x + (1 − x)·0.5·bg, so
    # (e − 0.5·bg) / (1 − 0.5·bg) gives x back, and it must be one of the test digits.
    digits = mnist_test(cfg).reshape(-1, 28 * 28)
    bg, examples = a["backgrounds"], a["background_examples"]
    assert bg.shape == examples.shape == (10, 28, 28)
    for k in range(10):
        x = ((examples[k] - 0.5 * bg[k]) / (1 - 0.5 * bg[k])).reshape(-1)
        assert np.abs(digits - x).max(axis=1).min() < 1e-5, k

    figures = RecosPage().figures(loaded)  # the page draws every figure from what was saved
    assert len(figures) == 8


def mnist_test(cfg: RecosConfig) -> np.ndarray:
    """The test digits the experiment used, read the way every training run reads them."""
    from convscope.train.run import load_data

    _, (x_test, _), _ = load_data(cfg.train)
    return x_test.numpy()
