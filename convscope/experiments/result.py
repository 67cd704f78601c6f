"""The `Result` of an experiment: the reproduce contract.

`convscope reproduce NAME --out DIR` writes `DIR/result.json`:

    {"name": ..., "title": ..., "metrics": {flat named figures}, "published": {figure: {"value", "source", "note"}},
     "provenance": {"config", "seeds", "versions", "data_checksum", "wall_seconds", ...},
     "figures": {caption: relative path}, "arrays": [names stored in result.npz], "notes": [...]}

and `DIR/result.npz` with the arrays. It loads back without the model, so the report renders it
alone. `published` keys name the metric they compare to, so the atlas can put them side by side.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convscope.io import read_json, save_npz, write_json


@dataclass
class Published:
    """A published figure an experiment compares to (REFERENCE.md), with its source."""

    value: float | str
    source: str
    note: str = ""


@dataclass
class Result:
    """Numbers, arrays and provenance of one experiment run."""

    name: str
    title: str
    metrics: dict[str, Any]
    published: dict[str, Published] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def save(self, out_dir: str | Path) -> Path:
        """Write result.json (and result.npz when there are arrays) into `out_dir`."""
        out_dir = Path(out_dir)
        doc = {
            "name": self.name,
            "title": self.title,
            "metrics": self.metrics,
            "published": {k: asdict(v) for k, v in self.published.items()},
            "provenance": self.provenance,
            "figures": self.figures,
            "arrays": sorted(self.arrays),
            "notes": self.notes,
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
            with np.load(out_dir / "result.npz") as z:
                loaded = {k: z[k] for k in z.files}
        return cls.from_dict(doc, loaded)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Result:
        """A Result from the parsed result.json (and its arrays, if loaded)."""
        return cls(
            name=doc["name"],
            title=doc.get("title", doc["name"]),
            metrics=doc["metrics"],
            published={k: Published(**v) for k, v in doc.get("published", {}).items()},
            provenance=doc.get("provenance", {}),
            figures=doc.get("figures", {}),
            arrays=arrays or {},
            notes=doc.get("notes", []),
        )


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries a result depends on."""
    import torch

    import convscope

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "convscope": convscope.__version__,
    }
