"""`convscope lab` end to end on a small MNIST subset: trains, runs its experiment, renders, reuses."""

from __future__ import annotations

import json

import pytest

from convscope.config import TrainConfig
from convscope.experiments.lenet5 import LeNet5Config
from convscope.lab import run_lab

SMALL = TrainConfig(epochs=1, batch_size=50, train_subset=1000, test_subset=300, device="cpu")


@pytest.mark.slow
def test_lab_trains_renders_and_reuses(tmp_path):
    from tests.report.browser import check_pages, find_chromium

    out = tmp_path / "lab"
    experiments = {"lenet5": LeNet5Config(seeds=[0, 1], train=SMALL)}
    logs: list[str] = []
    index = run_lab(out, cfg=SMALL, experiments=["lenet5"], experiment_configs=experiments, progress=False,
                    log=logs.append)
    assert index == out / "atlas" / "index.html" and index.exists()
    assert logs[0].startswith("trained lenet5 on mnist")
    result = json.loads((out / "experiments" / "lenet5" / "result.json").read_text())
    assert set(result["metrics"]) >= {"test_acc", "test_acc_std", "params", "train_seconds"}
    assert result["metrics"]["params"] == 61_706 and 0.5 < result["metrics"]["test_acc"] <= 1
    assert result["published"]["test_error_pct"]["value"] == 0.95
    assert result["provenance"]["data_checksum"] and result["provenance"]["versions"]["torch"]
    pages = sorted(p.name for p in (out / "atlas").glob("*.html"))
    assert pages == ["exp-lenet5.html", "index.html", "layer-features.conv1.html", "layer-features.conv2.html",
                     "model.html"]
    if find_chromium():
        assert check_pages((out / "atlas").glob("*.html")) == []

    # The second run reuses the checkpoint and the experiment, and renders the same pages.
    mtime = (out / "checkpoint" / "state.json").stat().st_mtime
    wall = json.loads((out / "run.json").read_text())["provenance"]["wall_seconds"]
    logs.clear()
    run_lab(out, cfg=SMALL, experiments=["lenet5"], experiment_configs=experiments, progress=False,
            log=logs.append)
    assert logs[0].startswith("reused") and logs[1].startswith("reused experiment")
    assert (out / "checkpoint" / "state.json").stat().st_mtime == mtime
    # and the atlas still shows the wall time of the run that trained, not of the reuse
    assert json.loads((out / "run.json").read_text())["provenance"]["wall_seconds"] == wall


def test_lab_runs_every_experiment_with_its_lab_config():
    from convscope.experiments import get_experiment, list_experiments
    from convscope.lab import lab_config, lab_experiments

    names = lab_experiments()
    assert names == sorted(names) and {"lenet5", "parts", "recos", "textbook", "crelu"} <= set(names)
    assert set(names) <= set(list_experiments())
    for name in names:
        exp = get_experiment(name)
        # Each lab config is its experiment's own config type, and smaller than the full protocol.
        assert type(lab_config(name)) is exp.config and lab_config(name) != exp.config(), name


def test_lab_skips_an_experiment_whose_data_is_missing(tmp_path):
    from dataclasses import replace

    from convscope.experiments.crelu import CReLUConfig

    crelu = CReLUConfig.lab()
    crelu = replace(crelu, root=str(tmp_path / "no-cifar-here"), train=replace(crelu.train, data="cifar10"))
    logs: list[str] = []
    index = run_lab(tmp_path / "lab", cfg=SMALL, experiments=["crelu"], experiment_configs={"crelu": crelu},
                    progress=False, log=logs.append)
    assert index.exists()
    assert logs[-1].startswith("skipped experiment crelu: ") and "cifar" in logs[-1].lower()
    assert not (tmp_path / "lab" / "experiments" / "crelu" / "result.json").exists()
    # The atlas still shows the experiment: why it was skipped and the command that adds it.
    page = (tmp_path / "lab" / "atlas" / "exp-crelu.html").read_text()
    assert "not run" in page and "cifar" in page.lower() and "convscope lab --out" in page
    assert "exp-crelu.html" in index.read_text()
