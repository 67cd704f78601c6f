"""The file-format readers: IDX, the restricted unpickler, mnist.pkl.gz and the CIFAR python batches."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from convscope.data.formats import (
    decode_mnist_pickle,
    encode_idx,
    parse_idx,
    read_cifar_dir,
    read_cifar_tar,
    read_idx,
    read_idx_pair,
    safe_unpickle,
)
from convscope.errors import DataError

from .fakes import cifar_files, write_cifar, write_idx

# ---------------------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    arr = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = write_idx(tmp_path / f"x-idx3-ubyte{suffix}", arr)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_idx_header_is_big_endian(tmp_path):
    raw = encode_idx(np.zeros((60000, 28, 28), dtype=np.uint8)[:2])
    assert raw[:4] == bytes([0, 0, 0x08, 3])  # magic: uint8, 3 dims
    assert raw[4:8] == (2).to_bytes(4, "big") and raw[8:12] == (28).to_bytes(4, "big")


@pytest.mark.parametrize(("code", "big_endian"), [(0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"),
                                                 (0x0D, ">f4"), (0x0E, ">f8")])
def test_idx_bytes_written_by_hand_from_the_spec(code, big_endian):
    # LeCun's IDX format: two zero bytes, a type code, the number of dimensions, each dimension as a
    # big-endian int32, then the data, big-endian, in C order.
    arr = (np.arange(2 * 3) - 2).astype(big_endian).reshape(2, 3)
    raw = bytes([0, 0, code, 2]) + struct.pack(">ii", 2, 3) + arr.tobytes()
    out = parse_idx(raw)
    np.testing.assert_array_equal(out, [[-2, -1, 0], [1, 2, 3]] if code != 0x08 else arr)
    assert out.shape == (2, 3) and out.dtype == np.dtype(big_endian).newbyteorder("=")
    assert encode_idx(out) == raw  # and the writer writes exactly those bytes


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(dtype=st.sampled_from([np.uint8, np.int16, np.int32, np.float32]),
                  shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)))
def test_idx_round_trip_property(arr):
    np.testing.assert_array_equal(parse_idx(encode_idx(arr)), arr)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_idx_names_the_file(tmp_path, suffix):
    raw = encode_idx(np.ones((4, 28, 28), dtype=np.uint8))[:-10]
    path = tmp_path / f"train-images-idx3-ubyte{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix else raw)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        read_idx(path)


def test_cut_gzip_stream_is_a_data_error(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    path.write_bytes(gzip.compress(encode_idx(data))[:1000])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        read_idx(path)


@pytest.mark.parametrize("raw", [b"", b"\x00\x00", b"\x01\x00\x08\x01abcd", b"\x00\x00\x07\x01\x00\x00\x00\x01x",
                                 b"\x00\x00\x08\x03\x00\x00"])
def test_bad_idx_headers(raw):
    with pytest.raises(DataError, match="not a valid IDX file"):
        parse_idx(raw, name="bad-file")


def test_idx_pair_checks_counts(tmp_path):
    images = write_idx(tmp_path / "i", np.zeros((3, 28, 28), dtype=np.uint8))
    labels = write_idx(tmp_path / "l", np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataError, match="4,.*3 images"):
        read_idx_pair(images, labels)


# --------------------------------------------------------------------------------- safe unpickling


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps({b"data": _Evil(marker)}, protocol=2)
    with pytest.raises(DataError, match="not allowed"):
        safe_unpickle(data, name="evil.pkl")
    assert not marker.exists()


@pytest.mark.parametrize("payload", [(eval, ("1+1",)), (exec, ("x = 1",)), (np.load, ("/etc/passwd",))])
def test_restricted_unpickler_refuses_other_callables(payload):
    class Reducer:
        def __reduce__(self):
            return payload

    with pytest.raises(DataError, match="Refusing to load"):
        safe_unpickle(pickle.dumps(Reducer(), protocol=2))


def test_restricted_unpickler_rebuilds_arrays_and_builtins():
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": [1, 2, 3], b"name": b"x", b"f": 1.5}
    out = safe_unpickle(pickle.dumps(obj, protocol=2))
    np.testing.assert_array_equal(out[b"data"], obj[b"data"])
    assert out[b"labels"] == [1, 2, 3] and out[b"f"] == 1.5


def test_numpy1_module_path_is_allowed():
    # Pickles written by NumPy 1.x (all the published ones) name numpy.core, not numpy._core.
    data = pickle.dumps(np.arange(3, dtype=np.int64), protocol=2)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    np.testing.assert_array_equal(safe_unpickle(data), [0, 1, 2])


def test_corrupt_pickle_is_a_data_error():
    with pytest.raises(DataError, match="broken.pkl"):
        safe_unpickle(pickle.dumps({b"a": 1}, protocol=2)[:-3], name="broken.pkl")


# ------------------------------------------------------------------------------------ mnist.pkl.gz


def _mnist_pickle(n_train=5, n_valid=3, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for n in (n_train, n_valid, n_test):
        k = rng.integers(0, 256, size=(n, 784))
        parts.append(((k / 256).astype(np.float32), rng.integers(0, 10, size=n).astype(np.int64)))
    return parts


def test_mnist_pickle_train_is_train_then_valid():
    parts = _mnist_pickle()
    splits = decode_mnist_pickle(gzip.compress(pickle.dumps(tuple(parts), protocol=2)))
    x, y = splits["train"]
    assert x.shape == (8, 1, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(y, np.concatenate([parts[0][1], parts[1][1]]))
    np.testing.assert_array_equal(x.reshape(8, 784) / 256, np.concatenate([parts[0][0], parts[1][0]]))
    assert splits["test"][0].shape == (4, 1, 28, 28)


def test_mnist_pickle_rejects_values_not_k_over_256():
    parts = _mnist_pickle()
    parts[2] = (parts[2][0] + np.float32(0.001), parts[2][1])
    with pytest.raises(DataError, match="k/256"):
        decode_mnist_pickle(gzip.compress(pickle.dumps(tuple(parts), protocol=2)))


# ------------------------------------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("as_tar", [False, True])
def test_cifar_readers(tmp_path, dataset, as_tar):
    path, arrays, classes = write_cifar(tmp_path, dataset, {"train": 12, "test": 4}, as_tar=as_tar)
    splits, names = (read_cifar_tar if as_tar else read_cifar_dir)(dataset, path)
    assert names == classes
    for split in ("train", "test"):
        np.testing.assert_array_equal(splits[split][0], arrays[split][0])
        np.testing.assert_array_equal(splits[split][1], arrays[split][1])
        assert splits[split][0].shape[1:] == (3, 32, 32) and splits[split][1].dtype == np.int64


def test_cifar_row_layout_is_channel_planes():
    # The first 1024 values of a row are the red plane, row by row: pixel (0, 0, 1) is value 1.
    files, _, _ = cifar_files("cifar10", {"train": 5, "test": 1})
    batch = pickle.loads(files["test_batch"])
    row = np.arange(3072) % 256
    batch[b"data"] = row[None].astype(np.uint8)
    files["test_batch"] = pickle.dumps(batch, protocol=2)
    from convscope.data.formats import read_cifar

    splits, _ = read_cifar("cifar10", files, "mem")
    img = splits["test"][0][0]
    assert img[0, 0, 1] == 1 and img[0, 1, 0] == 32 and img[1, 0, 0] == 1024 % 256


def test_cifar100_uses_fine_labels(tmp_path):
    path, arrays, _ = write_cifar(tmp_path, "cifar100", {"train": 200, "test": 100}, as_tar=False)
    splits, names = read_cifar_dir("cifar100", path)
    assert len(names) == 100 and splits["train"][1].max() == 99
    np.testing.assert_array_equal(splits["train"][1], arrays["train"][1])


def test_cifar_batch_without_labels_is_a_data_error(tmp_path):
    path, _, _ = write_cifar(tmp_path, "cifar10", {"train": 5, "test": 2}, as_tar=False)
    (path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2))
    with pytest.raises(DataError, match="test_batch.*b'labels'"):
        read_cifar_dir("cifar10", path)


def test_cifar_corrupt_archive_is_a_data_error(tmp_path):
    path, _, _ = write_cifar(tmp_path, "cifar10", {"train": 5, "test": 2}, as_tar=True)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        read_cifar_tar("cifar10", path)


def test_cifar_archive_member_that_is_evil_is_refused(tmp_path):
    files, _, _ = cifar_files("cifar10", {"train": 5, "test": 2})
    files["test_batch"] = pickle.dumps(_Evil(tmp_path / "pwned"), protocol=2)
    path = tmp_path / "cifar-10-python.tar.gz"
    import io

    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="not allowed"):
        read_cifar_tar("cifar10", path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_arrays_pickled_by_python3_load(protocol):
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(safe_unpickle(pickle.dumps({b"data": arr}, protocol=protocol))[b"data"], arr)


def test_protocol5_arrays_are_refused():
    # NumPy writes protocol-5 arrays through numeric._frombuffer, which the allow-list leaves out on purpose.
    with pytest.raises(DataError, match="_frombuffer is not allowed"):
        safe_unpickle(pickle.dumps(np.arange(3), protocol=5))


def test_codecs_encode_only_as_latin1():
    data = b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aq\x01X\x05\x00\x00\x00rot13q\x02\x86q\x03Rq\x04."
    assert pickle.loads(data) == "n"  # the same pickle unrestricted: rot13 of "a"
    with pytest.raises(DataError, match="rot13"):
        safe_unpickle(data)
