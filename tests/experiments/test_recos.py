"""`reproduce recos` end to end on a tiny MNIST subset: every metric, figure and provenance entry."""

from __future__ import annotations

import json

import pytest

from convscope.config import TrainConfig, resolve
from convscope.experiments import get_experiment, run_experiment
from convscope.experiments.recos import RecosConfig
from convscope.result import Result

TRAINED = ["acc_original", "acc_inverted", "acc_negated_original", "acc_negated_inverted",
           "both_polarity_acc_original", "both_polarity_acc_inverted", "crelu_first_acc_original",
           "crelu_first_acc_inverted", "acc_linear", "acc_background", "knn_acc_by_layer", "scatter_ratio_by_layer"]
EXACT = ["exact_swap_mismatches", "linear_collapse_max_abs_diff"]


def test_config_resolves_from_the_command_line_and_has_a_lab_size():
    cfg = resolve(RecosConfig, overrides=["seeds=0,1", "train.epochs=1", "knn_k=3"])
    assert cfg.seeds == [0, 1] and cfg.train.epochs == 1 and cfg.knn_k == 3 and cfg.train.model == "lenet5"
    assert RecosConfig.lab().seeds == [0]
    assert get_experiment("recos").config is RecosConfig


@pytest.mark.slow
def test_tiny_reproduction_has_every_metric(tmp_path, mnist_small):
    cfg = RecosConfig(seeds=[0, 1], anchor_images=10, cluster_images=100, linear_check_images=50,
                      train=TrainConfig(epochs=1, batch_size=50, train_subset=300, test_subset=100, device="cpu"))
    result = run_experiment("recos", tmp_path, cfg, progress=False)
    m = result.metrics
    for key in TRAINED:
        assert key in m and f"{key}_std" in m, key
    for key in EXACT:
        assert key in m, key
    assert m["exact_swap_mismatches"] == 0
    assert m["acc_exact_swap_original"] == pytest.approx(m["acc_inverted"])
    assert m["acc_exact_swap_inverted"] == pytest.approx(m["acc_original"])
    assert m["linear_collapse_max_abs_diff"] <= 1e-5
    assert m["acc_linear_map"] == pytest.approx(m["acc_linear"], abs=0.011)  # the map predicts as the net does
    assert m["anchor_centred_flip_max_err"] < 1e-9
    assert len(m["layers"]) == len(m["knn_acc_by_layer"]) == len(m["scatter_ratio_by_layer_std"]) == 12
    assert m["layers"][0] == "input" and len(m["background_similarity_by_layer"]) == 5
    assert m["knn_acc_by_layer_std"][0] == 0.0  # the input layer is the same for every seed: exactly 0
    assert len(m["acc_negated_inverted_by_seed"]) == 2

    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["metrics"] == json.loads(json.dumps(m))
    for caption, name in saved["figures"].items():
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", caption
    prov = saved["provenance"]
    assert prov["seeds"] == [0, 1] and prov["data_checksum"] and prov["versions"]["torch"]
    assert prov["config"]["train"]["train_subset"] == 300
    gen = prov["background_generator"]
    assert gen["n"] == 10 and len(gen["params"]["sigma"]) == 10 and gen["alpha"] == 0.5
    assert saved["published"]["acc_inverted"]["value"] == 0.3736
    loaded = Result.load(tmp_path)
    assert loaded.arrays["backgrounds"].shape == (10, 28, 28)
    assert loaded.arrays["conv1_weight_by_seed"].shape == (2, 6, 1, 5, 5)
