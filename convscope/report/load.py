"""Reading a run directory for the atlas: what is there, what is absent, what is unreadable.

The layout is the one `convscope/io.py` documents. Every file is optional; `open_run` gathers
what exists into a `RunFiles` and notes a readable sentence in `problems` for each file that
exists but cannot be used, so the pages can say so instead of failing. Nothing here imports a
model: experiments come back through `Result`'s JSON + npz contract.
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

from convscope.experiments.result import Result
from convscope.io import read_json, read_jsonl


@dataclass
class Experiment:
    """One experiment found in the run directory."""

    slug: str
    dir: Path
    result: Result


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
    experiments: list[Experiment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.run or self.metrics or self.summary or self.conv_layers or self.experiments)


def _read(path: Path, problems: list[str], root: Path) -> Any:
    """read_json, or None with a problem noted when the file is absent or not valid JSON."""
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError) as e:
        problems.append(f"{path.relative_to(root)} could not be read ({e}).")
        return None


@contextmanager
def open_run(root: Path) -> Iterator[RunFiles]:
    """Read the run directory `root`; layers.npz stays open (arrays load lazily) until exit."""
    rf = RunFiles(root=root)
    run = _read(root / "run.json", rf.problems, root)
    rf.run = run if isinstance(run, dict) else None
    rf.metrics = [r for r in read_jsonl(root / "metrics.jsonl") if isinstance(r, dict)]
    summary = _read(root / "summary.json", rf.problems, root)
    rf.summary = summary if isinstance(summary, dict) else None
    rf.experiments = _experiments(root, rf.problems)
    npz = None
    try:
        if (root / "layers.npz").is_file():
            try:
                npz = np.load(root / "layers.npz")
            except (OSError, ValueError, zipfile.BadZipFile) as e:
                rf.problems.append(f"layers.npz could not be read ({e}).")
        if npz is not None:
            meta = _read(root / "layers.json", rf.problems, root)
            meta = meta if isinstance(meta, dict) else {}
            rf.layers = npz
            names = meta.get("conv_layers")
            if not isinstance(names, list):  # no layers.json: the conv layers are the saved weights
                names = [k[: -len(".weight")] for k in npz.files if k.endswith(".weight")]
            names = [str(n) for n in names]
            rf.conv_layers = [n for n in names if f"{n}.weight" in npz.files]
            for n in names:
                if n not in rf.conv_layers:
                    rf.problems.append(f"layers.npz has no weights for conv layer {n}.")
            rf.classes = [str(c) for c in meta["classes"]] if meta.get("classes") else None
        yield rf
    finally:
        if npz is not None:
            npz.close()


def _experiments(root: Path, problems: list[str]) -> list[Experiment]:
    """experiments/NAME/result.json in name order; a run dir that is itself one result counts too."""
    dirs = sorted(p.parent for p in (root / "experiments").glob("*/result.json"))
    if (root / "result.json").is_file():
        dirs.insert(0, root)
    out, seen = [], set()
    for d in dirs:
        try:
            doc = read_json(d / "result.json")
            if doc.get("arrays") and (d / "result.npz").is_file():
                result = Result.load(d)
            else:  # no arrays, or result.npz lost: the numbers render without them
                result = Result.from_dict(doc)
                if doc.get("arrays"):
                    problems.append(f"{d.relative_to(root) / 'result.npz'} is missing; its arrays are not listed.")
            if not isinstance(result.metrics, dict) or not isinstance(result.figures, dict):
                raise ValueError("its metrics and figures must be JSON objects")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as e:
            problems.append(f"{(d / 'result.json').relative_to(root)} could not be read ({e}).")
            continue
        name = d.name if d != root else result.name
        out.append(Experiment(slug=unique(safe_name(name), seen), dir=d, result=result))
    return out


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
