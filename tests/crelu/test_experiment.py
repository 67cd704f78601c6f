"""`reproduce crelu` end to end on a tiny configuration: every metric, figure and provenance entry."""

from dataclasses import replace

import pytest

from convscope.config import TrainConfig
from convscope.experiments import run_experiment
from convscope.experiments.crelu import CReLUConfig
from convscope.experiments.result import Result


@pytest.mark.slow
def test_tiny_crelu_reproduction(tmp_path):
    tiny = TrainConfig(model="allconv-c", data="fashion-mnist", epochs=1, batch_size=50, lr=0.003,
                       train_subset=300, test_subset=100, device="cpu")
    cfg = CReLUConfig(seeds=[0, 1], variants=["baseline", "crelu"], width=0.1, train=tiny,
                      lenet_train=replace(tiny, model="lenet5", data="mnist"), invariance_images=50, recon_images=2)
    result = run_experiment("crelu", tmp_path, cfg, progress=False)
    m = result.metrics
    for key in ("mu_mean_by_layer", "mu_mean_random_by_layer", "frac_below_minus_half_by_layer",
                "test_error_by_variant", "params_by_variant", "invariance_by_layer", "recon_ratio_learned",
                "recon_ratio_random"):
        assert key in m, key
    assert set(m["test_error_by_variant"]) == {"baseline", "crelu"}
    assert m["params_by_variant"]["crelu"] > m["params_by_variant"]["baseline"]  # CReLU doubles what layers see
    assert set(m["mu_mean_by_layer"]) == {"lenet5 (MNIST)", "allconv-c baseline", "allconv-c crelu"}
    assert set(m["invariance_by_layer"]["crelu"]) == {"hflip", "rotate15", "translate3"}
    assert len(m["invariance_by_layer"]["crelu"]["hflip"]) == 7
    # without pooling the conv2 input is recovered far better than with it
    assert m["recon_ratio_learned"]["conv2_nopool"] < m["recon_ratio_learned"]["conv2_pool"]
    for f in result.figures.values():
        assert (tmp_path / f).stat().st_size > 1000
    loaded = Result.load(tmp_path)
    assert loaded.provenance["data_checksum"] and loaded.published["recon_ratio_random"].value == "0.99"
