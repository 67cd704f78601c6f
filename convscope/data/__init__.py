"""Datasets for convscope: MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, verified and cached.

`load_dataset` returns an `ImageDataset` (uint8 images, int64 labels, class names, checksum, source).
Where the files come from, and how they are checked, is described in `convscope.data.sources`.
"""

from __future__ import annotations

from convscope.data.datasets import ImageDataset, dataset_info, dataset_names, fetch, load_dataset, verify

__all__ = ["ImageDataset", "dataset_info", "dataset_names", "fetch", "load_dataset", "verify"]
