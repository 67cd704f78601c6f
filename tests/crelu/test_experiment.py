"""`reproduce crelu` end to end on a tiny configuration: every metric, figure and provenance entry."""

import pytest
from typer.testing import CliRunner

from convscope.cli import app
from convscope.experiments.result import Result

TINY = {"epochs": 1, "batch_size": 50, "train_subset": 300, "test_subset": 100, "device": "cpu"}


@pytest.mark.slow
def test_tiny_crelu_reproduction(tmp_path):
    sets = ["seeds=[0,1]", "variants=baseline,crelu", "invariance_images=50", "recon_images=2",
            *(f"{part}.{k}={v}" for part in ("train", "lenet_train") for k, v in TINY.items())]
    args = ["reproduce", "crelu", "--out", str(tmp_path), "--width", "0.1", "-q"]
    cli = CliRunner().invoke(app, args + [a for s in sets for a in ("--set", s)])
    assert cli.exit_code == 0, cli.output
    assert "test_error_by_variant" in cli.output  # the measured-beside-published table
    result = Result.load(tmp_path)
    m = result.metrics
    assert m["width"] == 0.1 and result.provenance["config"]["width"] == 0.1
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
    assert result.provenance["data_checksum"] and result.published["recon_ratio_random"].value == "0.99"
