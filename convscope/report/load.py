"""Reading a run directory for the atlas: what is there, what is absent, what is unreadable.

The layout is the one `convscope/io.py` documents. Every file is optional; `open_run` gathers
what exists into a `RunFiles` and notes a readable sentence in `problems` for each file that
exists but cannot be used, so the pages can say so instead of failing. Nothing here imports a
model: experiments come back through `Result`'s JSON + npz contract.

A run directory may come from someone else, so every saved file is untrusted input: a file is read
only when it lies inside the run directory and is no symbolic link (`inside`), JSON files and arrays
have size limits, arrays load without pickle, and every string reaches the pages HTML-escaped.
A path that a saved file names outside its run directory is refused with a `UserError`.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convscope.errors import UserError
from convscope.io import read_json, read_jsonl
from convscope.result import Result

MAX_JSON_BYTES = 64 << 20  # a result.json or run.json larger than this is not read
MAX_ATTACHED_BYTES = 32 << 20  # nor a figure file a result names


@dataclass
class SavedExperiment:
    """One experiment found in the run directory: its Result, or why it was skipped."""

    slug: str
    dir: Path
    result: Result | None = None
    skipped: dict[str, str] | None = None  # {"reason", "command"} when the lab could not run it


@dataclass
class RunFiles:
    """What a run directory holds; None or empty where a file is absent, `problems` where unreadable."""

    root: Path
    run: dict | None = None
    metrics: list[dict] = field(default_factory=list)
    summary: dict | None = None
    layers: Any = None  # the open NpzFile of layers.npz
    conv_layers: list[str] = field(default_factory=list)
    classes: list[str] | None = None
    experiments: list[SavedExperiment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.run or self.metrics or self.summary or self.conv_layers or self.experiments)


def inside(root: Path, rel: Path, what: str) -> Path:
    """`root / rel` when it lies inside the run directory `root` and no part of it below `root` is a
    symbolic link; else a UserError naming `what` (the saved file that pointed there)."""
    probe, escapes = root, rel.is_absolute() or ".." in rel.parts
    for part in () if escapes else rel.parts:
        probe = probe / part
        escapes = escapes or probe.is_symlink()
    if escapes or not (root / rel).resolve().is_relative_to(root.resolve()):
        raise UserError(f"{what} points to {str(rel)!r}, outside the run directory {root} (or through a symbolic "
                        "link): the report reads only files inside the run directory, so remove that entry or "
                        "copy the file in.")
    return root / rel


def _read(path: Path, problems: list[str], root: Path) -> Any:
    """read_json, or None with a problem noted when the file is absent, too large or not valid JSON."""
    if not path.is_file() and not path.is_symlink():
        return None
    path = inside(root, path.relative_to(root), str(path.relative_to(root)))
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ValueError(f"larger than {MAX_JSON_BYTES >> 20} MiB")
        return read_json(path)
    except (OSError, ValueError) as e:
        problems.append(f"{path.relative_to(root)} could not be read ({e}).")
        return None


@contextmanager
def open_run(root: Path) -> Iterator[RunFiles]:
    """Read the run directory `root`; layers.npz stays open (arrays load lazily) until exit."""
    run_files = RunFiles(root=root)
    problems = run_files.problems
    run = _read(root / "run.json", problems, root)
    run_files.run = run if isinstance(run, dict) else None
    if (root / "metrics.jsonl").exists():
        metrics = inside(root, Path("metrics.jsonl"), "metrics.jsonl")
        run_files.metrics = [r for r in read_jsonl(metrics) if isinstance(r, dict)]
    summary = _read(root / "summary.json", problems, root)
    run_files.summary = summary if isinstance(summary, dict) else None
    run_files.experiments = _experiments(root, problems)
    npz = None
    try:
        if (root / "layers.npz").exists():
            try:
                npz = np.load(inside(root, Path("layers.npz"), "layers.npz"), allow_pickle=False)
            except (OSError, ValueError, zipfile.BadZipFile) as e:
                problems.append(f"layers.npz could not be read ({e}).")
        if npz is not None:
            meta = _read(root / "layers.json", problems, root)
            meta = meta if isinstance(meta, dict) else {}
            run_files.layers = npz
            names = meta.get("conv_layers")
            if not isinstance(names, list):  # no layers.json: the conv layers are the saved weights
                names = [k[: -len(".weight")] for k in npz.files if k.endswith(".weight")]
            names = [str(n) for n in names]
            run_files.conv_layers = [n for n in names if f"{n}.weight" in npz.files]
            for n in names:
                if n not in run_files.conv_layers:
                    problems.append(f"layers.npz has no weights for conv layer {n}.")
            classes = meta.get("classes")
            run_files.classes = [str(c) for c in classes] if isinstance(classes, list) and classes else None
        yield run_files
    finally:
        if npz is not None:
            npz.close()


def _experiments(root: Path, problems: list[str]) -> list[SavedExperiment]:
    """experiments/NAME/result.json (or skipped.json) in name order; a run dir that is itself one result too."""
    dirs = sorted({p.parent for pattern in ("*/result.json", "*/skipped.json")
                   for p in (root / "experiments").glob(pattern)})
    if (root / "result.json").is_file():
        dirs.insert(0, root)
    out, seen = [], set()
    for d in dirs:
        inside(root, d.relative_to(root), str(d.relative_to(root)))
        name, slug_seen = d.name, seen
        if not (d / "result.json").exists():
            skipped = _read(d / "skipped.json", problems, root)
            if isinstance(skipped, dict):
                info = {k: str(skipped.get(k, "")) for k in ("reason", "command")}
                out.append(SavedExperiment(slug=unique(safe_name(name), slug_seen), dir=d, skipped=info))
            continue
        try:
            result = _load_result(root, d, problems)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as e:
            problems.append(f"{(d / 'result.json').relative_to(root)} could not be read ({e}).")
            continue
        name = d.name if d != root else result.name
        out.append(SavedExperiment(slug=unique(safe_name(name), seen), dir=d, result=result))
    return out


def _load_result(root: Path, d: Path, problems: list[str]) -> Result:
    doc = _read(d / "result.json", problems, root)
    if not isinstance(doc, dict):
        raise ValueError("it is not a JSON object")
    arrays: dict[str, np.ndarray] = {}
    if doc.get("arrays"):
        if (d / "result.npz").exists():
            with np.load(inside(root, (d / "result.npz").relative_to(root), "result.npz"), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        else:  # result.npz lost: the numbers render without the arrays
            problems.append(f"{d.relative_to(root) / 'result.npz'} is missing; figures drawn from it are absent.")
    result = Result.from_dict(doc, arrays)
    for attr, kind in (("metrics", dict), ("figures", dict), ("by_seed", dict), ("notes", list)):
        if not isinstance(getattr(result, attr), kind):
            raise ValueError(f"its {attr} must be a JSON {'object' if kind is dict else 'array'}")
    return result


def attached_file(root: Path, exp: SavedExperiment, rel: Any) -> bytes:
    """The bytes of a figure file that `exp`'s result.json names, read only from inside the run directory."""
    what = f"{(exp.dir / 'result.json').relative_to(root)} (figure {str(rel)!r})"
    if not isinstance(rel, str) or not rel:
        raise UserError(f"{what} is not a relative file path: remove that entry from its figures.")
    path = inside(root, exp.dir.relative_to(root) / Path(rel), what)
    if not path.is_file():
        raise FileNotFoundError(rel)
    if path.stat().st_size > MAX_ATTACHED_BYTES:
        raise UserError(f"{what} is larger than {MAX_ATTACHED_BYTES >> 20} MiB: the atlas copies figure files "
                        "of at most that size; shrink it or remove the entry.")
    return path.read_bytes()


def safe_name(name: str) -> str:
    """`name` made safe for a file name: features.conv1 stays, a/b becomes a_b."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "unnamed"


def unique(name: str, seen: set[str]) -> str:
    """`name`, or `name-2`, `name-3`... if taken; adds it to `seen`."""
    base, k = name, 2
    while name in seen:
        name, k = f"{base}-{k}", k + 1
    seen.add(name)
    return name
