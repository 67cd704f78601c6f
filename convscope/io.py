"""Atomic file writes and the layout of a run directory.

Nothing convscope writes may leave a half-written file behind: every write goes to a temporary file
in the same directory and is renamed over the target (`os.replace` is atomic on POSIX), so a crash or
Ctrl-C leaves either the old file or the new one.

A run directory (what `convscope train`, `convscope lab` and `convscope reproduce` write) holds:

    run.json          what the run is: {"kind", "model", "dataset", "config", "provenance", "final"}
    metrics.jsonl     one JSON object per epoch: epoch, train_loss, train_acc, test_loss, test_acc, lr, seconds
    checkpoint/       model.safetensors, optimizer.safetensors, state.json (see train/checkpoint.py)
    summary.json      the model's layer table (models/summary.py `Summary.to_dict()`)
    layers.npz        arrays for the atlas: "images" (n,C,H,W) float32, "labels", "preds",
                      "<layer>.weight" (out,in,kh,kw) and "<layer>.act" (n,out,h,w) for every conv layer
    layers.json       {"conv_layers": [dotted names in forward order], "classes": [...]}
    experiments/NAME/ result.json (+ result.npz and figure files) from `reproduce`
    atlas/            the rendered HTML atlas (index.html first)
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file in the same directory, then rename).

    The file gets the permissions any new file gets, 0666 less the umask (`tempfile.mkstemp` would make
    it 0600, readable by its owner only, and the rename would carry that over to every atlas page and run file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, exclusively created file beside `path`, opened for writing with mode 0666 (the umask applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write `obj` as indented JSON, atomically; NumPy scalars and arrays become plain numbers/lists."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_to_jsonable) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def append_jsonl(path: str | os.PathLike[str], obj: Any) -> None:
    """Append one JSON line (a line is small, so a partial write is at worst one bad last line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, default=_to_jsonable) + "\n")


def read_jsonl(path: str | os.PathLike[str]) -> list[Any]:
    """Read a JSON-lines file, skipping a torn last line left by a crash."""
    rows = []
    path = Path(path)
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    """Save arrays to an .npz atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # torch scalar tensors
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
