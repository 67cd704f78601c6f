"""Tiny datasets written in the official on-disk formats, for tests that must not need the network."""

from __future__ import annotations

import dataclasses
import gzip
import io
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np

from convscope.data import sources
from convscope.data.formats import CIFAR_LAYOUT, encode_idx


def write_idx(path: Path, arr: np.ndarray) -> Path:
    """Write `arr` as an IDX file, gzipped when `path` ends in .gz."""
    raw = encode_idx(arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def make_split(n: int, shape: tuple[int, int, int], num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = (np.arange(n) % num_classes).astype(np.int64)  # every class present, balanced when n % K == 0
    return images, labels


def write_mnist_dir(folder: Path, sizes: dict[str, int], gz: bool = True, seed: int = 0) -> dict:
    """Write IDX files for the given splits in `folder`; return {split: (images, labels)}."""
    out = {}
    for i, (split, n) in enumerate(sizes.items()):
        images, labels = make_split(n, (1, 28, 28), 10, seed + i)
        image_stem, label_stem = sources.IDX_FILES[split]
        ext = ".gz" if gz else ""
        write_idx(folder / f"{image_stem}{ext}", images[:, 0])
        write_idx(folder / f"{label_stem}{ext}", labels.astype(np.uint8))
        out[split] = (images, labels)
    return out


def cifar_files(dataset: str, sizes: dict[str, int], seed: int = 0) -> tuple[dict[str, bytes], dict, list[str]]:
    """The official CIFAR python files for tiny splits: ({file name: pickle bytes}, {split: arrays}, classes)."""
    folder, train_files, test_file, meta_file, meta_key, label_key = CIFAR_LAYOUT[dataset]
    k = 10 if dataset == "cifar10" else 100
    classes = [f"class_{i}" for i in range(k)]
    files, arrays = {}, {}
    for i, (split, names) in enumerate((("train", train_files), ("test", [test_file]))):
        images, labels = make_split(sizes[split], (3, 32, 32), k, seed + i)
        arrays[split] = (images, labels)
        for j, chunk in enumerate(np.array_split(np.arange(sizes[split]), len(names))):
            batch = {b"batch_label": f"batch {j}".encode(), b"data": images[chunk].reshape(len(chunk), 3072),
                     label_key: labels[chunk].tolist(), b"filenames": [b"x.png"] * len(chunk)}
            if dataset == "cifar100":
                batch[b"coarse_labels"] = (labels[chunk] // 5).tolist()
            files[names[j]] = pickle.dumps(batch, protocol=2)
    meta = {meta_key: [c.encode() for c in classes]}
    if dataset == "cifar100":
        meta[b"coarse_label_names"] = [f"super_{i}".encode() for i in range(20)]
    else:
        meta[b"num_cases_per_batch"] = 10000
    files[meta_file] = pickle.dumps(meta, protocol=2)
    return files, arrays, classes


def write_cifar(
    root: Path, dataset: str, sizes: dict[str, int], as_tar: bool, seed: int = 0
) -> tuple[Path, dict, list]:
    """Write the extracted folder or the .tar.gz of a tiny CIFAR under `root`; return (path, arrays, classes)."""
    files, arrays, classes = cifar_files(dataset, sizes, seed)
    folder = CIFAR_LAYOUT[dataset][0]
    root.mkdir(parents=True, exist_ok=True)
    if not as_tar:
        for name, data in files.items():
            (root / folder).mkdir(exist_ok=True)
            (root / folder / name).write_bytes(data)
        return root / folder, arrays, classes
    path = root / sources.SPECS[dataset].archive
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path, arrays, classes


def pin_tiny(monkeypatch, name: str, arrays: dict, **changes) -> sources.DatasetSpec:
    """Swap in a spec whose official sizes and pins are those of the tiny `arrays`: the test hook for pins."""
    fields = {
        "sizes": {s: len(y) for s, (_, y) in arrays.items()},
        "sha256": {s: sources.array_sha256(x, y) for s, (x, y) in arrays.items()},
        **changes,
    }
    spec = dataclasses.replace(sources.SPECS[name], **fields)
    monkeypatch.setitem(sources.SPECS, name, spec)
    return spec


def fake_debian_tools(bin_dir: Path, arrays: dict, spec: sources.DatasetSpec,
                      apt_get: str | None = "ok", dpkg_deb: str | None = "ok") -> Path:
    """Write fake ``apt-get`` and ``dpkg-deb`` shell scripts in `bin_dir`; return the log they append to.

    The "package file" is an uncompressed tar of ``spec.system_dir`` (leading / dropped) holding the
    IDX files of `arrays`; ``apt-get download PKG`` copies it into its working directory as
    ``PKG_0.1-1_all.deb`` and ``dpkg-deb -x DEB DIR`` untars it into DIR. Each tool is "ok", "fail"
    (exits non-zero with an error like the real one's) or None (absent). Both log ``tool $PWD args``.
    The scripts call cp and tar by absolute path, so the test may set PATH to `bin_dir` alone.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    tree = bin_dir.parent / "package-tree"
    folder = tree / spec.system_dir.lstrip("/")
    for split, (images, labels) in arrays.items():
        image_stem, label_stem = sources.IDX_FILES[split]
        write_idx(folder / f"{image_stem}.gz", images[:, 0])
        write_idx(folder / f"{label_stem}.gz", labels.astype(np.uint8))
    package = bin_dir.parent / "package.tar"
    with tarfile.open(package, "w") as tar:
        for top in tree.iterdir():
            tar.add(top, arcname=top.name)
    log = bin_dir.parent / "tools.log"
    cp, tar_bin = shutil.which("cp"), shutil.which("tar")
    scripts = {
        "apt-get": {
            "ok": f'[ "$1" = download ] && [ "$2" = {spec.system_package} ] || exit 100\n'
                  f'exec {cp} {package} "./$2_0.1-1_all.deb"',
            "fail": 'echo "W: Unable to read /etc/apt/sources.list.d" >&2\n'
                    'echo "E: Unable to locate package $2" >&2\nexit 100',
        },
        "dpkg-deb": {
            "ok": f'[ "$1" = -x ] || exit 2\nexec {tar_bin} -xf "$2" -C "$3"',
            "fail": 'echo "dpkg-deb: error: \'$2\' is not a Debian format archive" >&2\nexit 2',
        },
    }
    for tool, mode in (("apt-get", apt_get), ("dpkg-deb", dpkg_deb)):
        if mode is None:
            continue
        path = bin_dir / tool
        path.write_text(f'#!/bin/sh\necho "{tool} $PWD $*" >> {log}\n{scripts[tool][mode]}\n')
        path.chmod(0o755)
    return log
