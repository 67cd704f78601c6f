"""`reproduce crelu` end to end on a tiny configuration: every metric, figure and provenance entry."""

import pytest
from typer.testing import CliRunner

from convscope.cli import app
from convscope.result import Result

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


def test_crelu_on_the_users_cifar10_files(tmp_path, monkeypatch):
    from dataclasses import replace

    from convscope.experiments import run_experiment
    from convscope.experiments.crelu import CReLUConfig
    from tests.data.fakes import pin_tiny, write_cifar

    _, arrays, _ = write_cifar(tmp_path / "data", "cifar10", {"train": 120, "test": 40}, as_tar=False)
    pin_tiny(monkeypatch, "cifar10", arrays)
    base = CReLUConfig()
    cfg = CReLUConfig(seeds=[0], variants=["crelu"], width=0.05, root=str(tmp_path / "data"),
                      train=replace(base.train, data="cifar10", epochs=1, batch_size=40, train_subset=None,
                                    device="cpu"),
                      lenet_train=replace(base.lenet_train, epochs=1, train_subset=200, test_subset=50, device="cpu"),
                      invariance_images=20, recon_images=2)
    result = run_experiment("crelu", tmp_path / "out", cfg, progress=False)
    assert result.metrics["dataset"] == "cifar10"
    assert result.provenance["data"]["train_size"] == 120
    assert set(result.metrics["recon_ratio_learned"]) == {"conv2_pool", "conv2_nopool", "conv5_pool", "conv5_nopool"}
