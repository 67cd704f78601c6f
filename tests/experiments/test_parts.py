"""`reproduce parts`: the layer count, the steps-to-loss rule, the noise layer, and a tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.config import TrainConfig
from convscope.experiments import get_experiment
from convscope.experiments.parts import GaussianNoise, PartsConfig, depth_by_model, steps_to_loss
from convscope.models import list_models
from convscope.result import Result

TINY = PartsConfig(
    train=TrainConfig(epochs=1, batch_size=50, train_subset=300, test_subset=100, device="cpu"),
    images=["camera", "coffee"], image_size=48, edge_noise=[0.0, 0.2], test_noise=[0.0, 0.5],
    norm_steps=40, norm_lrs=[1e-3, 1e-1], featurevis_steps=5,
)
KEYS = {
    "planted_filter_max_abs_diff", "edge_survival_max", "edge_survival_avg", "acc_maxpool_under_noise",
    "acc_avgpool_under_noise", "steps_to_loss_raw", "steps_to_loss_standardised", "steps_to_loss_batchnorm",
    "linear_collapse_max_abs_diff", "acc_with_activation", "acc_without_activation",
    "acc_noise_trained_under_noise", "acc_clean_trained_under_noise", "acc_noise_trained_clean",
    "acc_clean_trained_clean", "featurevis_increased_conv1", "featurevis_increased_conv2", "depth_by_model",
    "depth_vgg16",
}


def test_vgg16_counts_16_layers_and_every_model_is_counted():
    depths = depth_by_model()
    assert depths["vgg16"] == 16 and depths["lenet5"] == 5
    assert sorted(depths) == list_models()


def test_steps_to_loss_uses_a_running_mean():
    losses = np.array([2.0] * 10 + [0.1] * 10)
    assert steps_to_loss(losses, 1.0, window=4) == 13  # first window under 1: steps 10–13, (2 + 3·0.1)/4
    assert steps_to_loss(losses, 0.01, window=4) is None
    assert steps_to_loss(np.array([0.1, np.nan, 0.1]), 1.0, window=2) is None  # a divergence never counts


def test_gaussian_noise_acts_only_in_training():
    layer, x = GaussianNoise(0.5), torch.zeros(100, 10)
    assert torch.equal(layer.eval()(x), x)
    assert 0.4 < float(layer.train()(x).std()) < 0.6


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
    exp = get_experiment("parts")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = exp.run(TINY, tmp_path, progress=False)
        assert torch.get_num_threads() == 2  # the run's own thread count (1) is undone
    finally:
        torch.set_num_threads(threads)
    result.save(tmp_path)
    assert KEYS <= set(result.metrics)
    assert result.metrics["planted_filter_max_abs_diff"] < 1e-5
    assert result.metrics["linear_collapse_max_abs_diff"] <= 1e-5
    assert result.metrics["edge_survival_max"][0] == pytest.approx(1.0)
    assert result.metrics["depth_vgg16"] == 16 == result.published["depth_vgg16"].value
    assert len(result.metrics["acc_noise_trained_under_noise"]) == len(TINY.test_noise)
    assert len(result.figures) >= 8
    for name in result.figures.values():
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = Result.load(tmp_path)
    assert loaded.metrics["depth_by_model"] == result.metrics["depth_by_model"]
    assert loaded.arrays["norm_loss_curves"].shape == (4, 2, 40)
    assert loaded.provenance["data_checksum"] and loaded.provenance["config"]["train"]["train_subset"] == 300
