"""`train.run.load_data`, the way `convscope lab` and `reproduce` get their data."""

from __future__ import annotations

import urllib.error
from dataclasses import replace

import numpy as np

from convscope.data import download, sources
from convscope.experiments.crelu import CReLUConfig
from convscope.train.run import load_data
from tests.data.fakes import fake_debian_tools, make_split, pin_tiny


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
