"""`reproduce parts`: the layer count, the steps-to-loss rule, the noise layer, and a tiny end-to-end run whose
saved Result the atlas draws without building a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from convscope.config import TrainConfig
from convscope.data.images import sample_image
from convscope.experiments import get_experiment
from convscope.experiments.parts import GaussianNoise, PartsConfig, depth_by_model, steps_to_loss
from convscope.models import list_models
from convscope.result import Result

from .atlas import figures_drawn

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
    assert list(tmp_path.iterdir()) == []  # an experiment computes; it writes no picture
    assert not result.figures
    result.save(tmp_path)
    assert KEYS <= set(result.metrics)
    assert result.metrics["planted_filter_max_abs_diff"] < 1e-5
    assert result.metrics["linear_collapse_max_abs_diff"] <= 1e-5
    assert result.metrics["edge_survival_max"][0] == pytest.approx(1.0)
    assert result.metrics["depth_vgg16"] == 16 == result.published["depth_vgg16"].value
    assert len(result.metrics["acc_noise_trained_under_noise"]) == len(TINY.test_noise)
    for key in ("planted_filter_max_abs_diff", "linear_collapse_max_abs_diff", "depth_lenet5"):
        assert result.published[key].kind == "expected (theory)" and result.published[key].tolerance is not None

    loaded = Result.load(tmp_path)
    a = loaded.arrays
    assert all(v.dtype in (np.float32, np.float16, np.int64) for v in a.values())  # no float64 to draw from
    k = TINY.gaussian_size  # the largest kernel: the narrow maps lose k - 1 pixels
    side = TINY.image_size - k + 1
    assert a["filter_images"].shape == (2, side, side) and a["filter_responses"].shape == (2, 4, side, side)
    # The saved maps are the photographs correlated with the saved kernels (scipy as the oracle).
    for i, name in enumerate(TINY.images):
        img = sample_image(name, size=TINY.image_size).astype(np.float64)
        for j, kernel in enumerate(a["kernels"]):
            np.testing.assert_allclose(a["filter_responses"][i, j], correlate2d(img, kernel, mode="valid"),
                                       rtol=2e-3, atol=2e-3)  # float16
    assert a["norm_loss_curves"].shape == (4, 2, 40)
    assert a["linear_collapse_A"].shape == (10, 1, 28, 28)
    np.testing.assert_allclose(a["linear_collapse_outputs"], a["linear_collapse_predicted"], atol=1e-4)
    assert a["featurevis_conv1_channel"].shape == (6, 1, 28, 28) and a["featurevis_conv2_neuron"].shape[0] == 16
    assert a["pooling_example_clean_max"].shape == a["pooling_example_clean_edges"][::2, ::2].shape
    assert loaded.metrics["depth_by_model"] == result.metrics["depth_by_model"]
    assert loaded.provenance["data_checksum"] and loaded.provenance["config"]["train"]["train_subset"] == 300
    assert loaded.provenance["seeds"] == [TINY.seed]

    assert figures_drawn(tmp_path, "parts") == 9  # every figure, drawn from the saved arrays alone
