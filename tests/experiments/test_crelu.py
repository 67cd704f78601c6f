"""`reproduce crelu` end to end on a tiny configuration: every metric, per-seed figure, array and provenance entry."""

from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from convscope.cli import app
from convscope.experiments.crelu import CReLUConfig, _published
from convscope.report.pages.crelu import CReLUPage
from convscope.result import Result

TINY = {"epochs": 1, "batch_size": 50, "train_subset": 300, "test_subset": 100, "device": "cpu"}
# Shang et al. 2016, Table 1 (docs/REFERENCE.md §4), typed from the reference
CIFAR10 = {"baseline": 9.17, "double": 8.65, "avr": 8.32, "crelu": 8.43, "crelu-half": 8.37}
CIFAR100 = {"baseline": 36.30, "double": 34.77, "avr": 35.00, "crelu": 31.48, "crelu-half": 33.68}
POOLED = {"recon_ratio_learned.conv2_pool": 0.92, "recon_ratio_learned.conv5_pool": 0.96,
          "recon_ratio_random.conv2_pool": 0.99, "recon_ratio_random.conv5_pool": 0.99}


@pytest.mark.slow
def test_tiny_crelu_reproduction(tmp_path):
    sets = ["seeds=[0,1]", "variants=baseline,crelu", "invariance_images=50", "recon_images=2",
            *(f"{part}.{k}={v}" for part in ("train", "lenet_train") for k, v in TINY.items())]
    args = ["reproduce", "crelu", "--out", str(tmp_path), "--width", "0.1", "-q"]
    cli = CliRunner().invoke(app, args + [a for s in sets for a in ("--set", s)])
    assert cli.exit_code == 0, cli.output
    assert "test_error_pct.crelu" in cli.output  # the measured-beside-published table
    result = Result.load(tmp_path)
    m = result.metrics
    assert m["width"] == 0.1 and result.provenance["config"]["width"] == 0.1
    for key in ("mu_mean_by_layer", "mu_mean_random_by_layer", "frac_below_minus_half_by_layer", "params_by_variant",
                "invariance_by_layer", "recon_ratio_learned.conv2_pool", "recon_ratio_random.conv5_nopool"):
        assert key in m, key
    for v in ("baseline", "crelu"):  # one test error per seed; the metric is their mean
        errors = result.by_seed[f"test_error_pct.{v}"]
        assert len(errors) == 2 and all(0 <= e <= 100 for e in errors)
        assert m[f"test_error_pct.{v}"] == pytest.approx(np.mean(errors))
    assert m["params_by_variant"]["crelu"] > m["params_by_variant"]["baseline"]  # CReLU doubles what layers see
    assert m["pairing_models"] == ["lenet5 (MNIST)", "allconv-c baseline", "allconv-c crelu"]
    assert set(m["invariance_by_layer"]["crelu"]) == {"hflip", "rotate15", "translate3"}
    assert len(m["invariance_by_layer"]["crelu"]["hflip"]) == len(m["invariance_layers"]) == 7
    # without pooling the conv2 input is recovered far better than with it
    assert m["recon_ratio_learned.conv2_nopool"] < m["recon_ratio_learned.conv2_pool"]
    # CReLU (half) was not trained: the full-width network is reconstructed, and no verdict is claimed
    assert m["recon_variant"] == "crelu"
    assert result.published["recon_ratio_learned.conv2_pool"].tolerance is None
    assert "not CReLU (half)" in result.published["recon_ratio_learned.conv2_pool"].note

    # An experiment computes; it draws nothing (docs/DESIGN.md).
    assert result.figures == {} and not list(tmp_path.rglob("*.png"))
    a = result.arrays
    assert all(v.dtype == np.float32 for v in a.values())
    for i, name in enumerate(m["pairing_models"]):
        for layer in m["mu_mean_by_layer"][name]:
            mu, rand = a[f"mu.{i}.{layer}"], a[f"mu_random.{i}.{layer}"]
            assert mu.shape == rand.shape and np.all((mu >= -1 - 1e-6) & (mu <= 1 + 1e-6))
            assert float(mu.mean()) == pytest.approx(m["mu_mean_by_layer"][name][layer], abs=1e-6)
    pictures = a["recon_pictures"]
    assert pictures.shape == (5, 2, 1, 28, 28) and m["recon_rows"][0] == "input"
    np.testing.assert_allclose(pictures[0], fashion_test(CReLUConfig().train)[:2], atol=1e-6)  # the first row
    assert result.provenance["data_checksum"] and result.published["test_error_pct.crelu"].value == 8.43
    assert len(CReLUPage().figures(result)) == 7  # the page draws every figure from what was saved


def fashion_test(train) -> np.ndarray:
    """The test images the experiment used, read the way every training run reads them."""
    from convscope.train.run import load_data

    _, (x_test, _), _ = load_data(replace(train, **TINY))
    return x_test.numpy()


def test_published_figures_follow_the_data_set_width_and_network():
    fashion = _published(CReLUConfig(), "fashion-mnist", "crelu-half")
    for v, err in CIFAR10.items():  # another data set: the CIFAR-10 column, compared by order only
        assert fashion[f"test_error_pct.{v}"].value == err and fashion[f"test_error_pct.{v}"].tolerance is None
    for key, value in POOLED.items():  # the paper's network: a verdict
        assert fashion[key].value == value and fashion[key].tolerance == 0.02 and "CReLU (half)" in fashion[key].note

    paper = _published(replace(CReLUConfig(), width=1.0), "cifar100", "crelu")
    for v, err in CIFAR100.items():  # the paper's data set at its size: a verdict on its column
        assert paper[f"test_error_pct.{v}"].value == err and paper[f"test_error_pct.{v}"].tolerance == 1.0
    for key in POOLED:  # full-width CReLU is not the network of the figure: no verdict, and the note says so
        assert paper[key].tolerance is None and "crelu network, not CReLU (half)" in paper[key].note
    assert not any(k.startswith("recon_ratio") for k in _published(CReLUConfig(), "cifar10", None))
    assert CReLUConfig.lab().variants == ["baseline", "crelu"]  # the lab's network is labelled, not judged


def test_crelu_on_the_users_cifar10_files(tmp_path, monkeypatch):
    from convscope.experiments import run_experiment
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
    assert {k for k in result.metrics if k.startswith("recon_ratio_learned.")} == {
        f"recon_ratio_learned.{k}" for k in ("conv2_pool", "conv2_nopool", "conv5_pool", "conv5_nopool")}
    assert result.arrays["recon_pictures"].shape == (5, 2, 3, 32, 32)  # colour images keep their channels
