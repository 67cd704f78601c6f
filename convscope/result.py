"""The `Result` of an experiment (the reproduce contract), the figures it is compared to, and provenance.

`convscope reproduce NAME --out DIR` writes `DIR/result.json`:

    {"name": ..., "title": ..., "metrics": {flat named figures}, "by_seed": {figure: [one value per seed]},
     "published": {figure: {"value", "source", "note", "kind", "tolerance"}},
     "provenance": {"config", "seeds", "versions", "data_checksum", "data", "wall_seconds", ...},
     "arrays": [names stored in result.npz], "notes": [...], "figures": {caption: relative path}}

and `DIR/result.npz` with the arrays. An experiment computes; it never draws (docs/DESIGN.md): everything a
figure needs is in `metrics`, `by_seed` and `arrays`, and the report layer draws the figures when the
atlas is rendered, so `convscope report DIR` redraws them without the model. `figures` is only for
files a user's own code saved beside its result; the report copies one only when it lies inside DIR.

A `Published` figure names the metric it is compared with (its key). `kind` says where it comes from:
"published" (a paper or article) or "expected (theory)" (what follows from the mathematics, such as the
zero error of a linear collapse). `tolerance`, when given, is the absolute difference within which
the measured mean counts as a reproduction.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from convscope._version import __version__
from convscope.io import read_json, save_npz, write_json

Kind = Literal["published", "expected (theory)"]


@dataclass
class Published:
    """A figure an experiment compares to (docs/REFERENCE.md), with its source."""

    value: float | str
    source: str
    note: str = ""
    kind: Kind = "published"
    tolerance: float | None = None


@dataclass
class Result:
    """Numbers, arrays and provenance of one experiment run."""

    name: str
    title: str
    metrics: dict[str, Any]
    published: dict[str, Published] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    by_seed: dict[str, list[Any]] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)

    def save(self, out_dir: str | Path) -> Path:
        """Write result.json (and result.npz when there are arrays) into `out_dir`."""
        out_dir = Path(out_dir)
        doc = {
            "name": self.name,
            "title": self.title,
            "metrics": self.metrics,
            "by_seed": self.by_seed,
            "published": {k: asdict(v) for k, v in self.published.items()},
            "provenance": self.provenance,
            "arrays": sorted(self.arrays),
            "notes": self.notes,
            "figures": self.figures,
        }
        if self.arrays:
            save_npz(out_dir / "result.npz", **self.arrays)
        return write_json(out_dir / "result.json", doc)

    @classmethod
    def load(cls, out_dir: str | Path, arrays: bool = True) -> Result:
        """Read a saved Result; `arrays=False` reads result.json alone (result.npz may be missing)."""
        out_dir = Path(out_dir)
        doc = read_json(out_dir / "result.json")
        loaded: dict[str, np.ndarray] = {}
        if arrays and doc.get("arrays"):
            with np.load(out_dir / "result.npz", allow_pickle=False) as z:
                loaded = {k: z[k] for k in z.files}
        return cls.from_dict(doc, loaded)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Result:
        """A Result from the parsed result.json (and its arrays, if loaded)."""
        known = {f.name for f in dataclasses.fields(Published)}
        return cls(
            name=doc["name"],
            title=doc.get("title", doc["name"]),
            metrics=doc["metrics"],
            published={k: Published(**{f: x for f, x in v.items() if f in known})
                       for k, v in doc.get("published", {}).items()},
            provenance=doc.get("provenance", {}),
            arrays=arrays or {},
            notes=doc.get("notes", []),
            by_seed=doc.get("by_seed", {}),
            figures=doc.get("figures", {}),
        )


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of per-seed figures."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries a result depends on, and what else changes its bits.

    Training is bit-for-bit a function of the seed within one process (tests/train/test_determinism.py),
    but between machines and processes the torch thread count, the CPU's instruction set and a GPU that
    `device="auto"` picks can change the results (oneDNN and MKL split reductions by thread and choose
    kernels by ISA), and after many steps a different bit becomes a different figure: so they are
    recorded too.
    """
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "numpy": np.__version__,
           "convscope": __version__, "cpu": _cpu_name()}
    torch = sys.modules.get("torch")  # read, not imported: the report layer loads Results without torch
    if torch is not None:
        out.update(torch=torch.__version__, threads=str(torch.get_num_threads()),
                   cpu_capability=torch.backends.cpu.get_cpu_capability(),
                   # device="auto" trains here when there is one (cuDNN, TF32: other numerics again)
                   cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(config: Any, seeds: Sequence[int], data: Mapping[str, Any] | None, started: float,
               **extra: Any) -> dict[str, Any]:
    """The provenance every Result carries: the resolved config, the seeds, library versions, the data's
    checksum and description, the wall time since `started` (a `time.perf_counter()` reading), and
    whatever else the experiment adds."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = json.loads(json.dumps(asdict(config), default=str))
    data = dict(data or {})
    return {"config": config, "seeds": list(seeds), "versions": versions(),
            "data_checksum": data.get("train_checksum"), "data": data,
            "wall_seconds": time.perf_counter() - started, **extra}


__all__ = ["Published", "Result", "mean_std", "provenance", "versions"]
