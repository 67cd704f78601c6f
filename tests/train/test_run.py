"""train/run.py: `load_data` (the way `convscope lab` and `reproduce` get their data) and the atlas inputs a run
directory saves of a model, with the model left in its own modes."""

from __future__ import annotations

import copy
import urllib.error
from dataclasses import replace

import numpy as np
import torch

from convscope.data import download, sources
from convscope.experiments.crelu import CReLUConfig
from convscope.io import read_json
from convscope.models import create_model
from convscope.train.run import load_data, write_atlas_inputs
from tests.data.fakes import fake_debian_tools, make_split, pin_tiny
from tests.untouched import assert_untouched, snapshot


def test_lab_crelu_data_on_a_fresh_machine_comes_from_the_debian_package_file(tmp_path, monkeypatch):
    """No cache, no $CONVSCOPE_DATA, no network mirror, Fashion-MNIST not installed, no root: lab's crelu
    still gets its data, through `apt-get download` + `dpkg-deb -x` (fakes of both, alone on PATH)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVSCOPE_DATA", raising=False)

    def offline(url, timeout):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(download, "_urlopen", offline)
    arrays = {"train": make_split(20, (1, 28, 28), 10, 0), "test": make_split(10, (1, 28, 28), 10, 1)}
    spec = pin_tiny(monkeypatch, "fashion-mnist", arrays, system_dir=str(tmp_path / "not-installed"))
    fake_debian_tools(tmp_path / "bin", arrays, spec)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    lab = CReLUConfig.lab().train
    assert lab.data == "fashion-mnist"
    (x, y), (xt, yt), info = load_data(replace(lab, train_subset=10, test_subset=5))
    assert info["source"].startswith("Debian package file dataset-fashion-mnist_0.1-1_all.deb (apt-get download)")
    assert info["train_checksum"] != spec.sha256["train"]  # a subset: its own checksum
    assert x.shape == (10, 1, 28, 28) and xt.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(y.numpy()), [1] * 10)  # class-balanced subset of 10
    assert sources.cache_file("fashion-mnist", "train").exists() and not (tmp_path / "not-installed").exists()


def test_write_atlas_inputs_runs_in_eval_mode_and_leaves_the_model_as_found(tmp_path, tiny_data):
    _, (x, y) = tiny_data
    torch.manual_seed(0)
    model = create_model("lenet5")
    model.train()
    model.classifier.eval()  # mixed modes, as a user may leave them
    before = snapshot(model)
    write_atlas_inputs(model, tmp_path, x, y, [str(c) for c in range(10)])
    assert_untouched(model, before)
    arrays = np.load(tmp_path / "layers.npz")
    picks = [int((y == c).nonzero()[0]) for c in range(6)]
    with torch.no_grad():
        preds = copy.deepcopy(model).eval()(x[picks]).argmax(1)
    assert arrays["preds"].tolist() == preds.tolist() and arrays["labels"].tolist() == list(range(6))
    assert read_json(tmp_path / "layers.json")["conv_layers"] == ["features.conv1", "features.conv2"]
