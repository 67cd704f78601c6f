"""The report layer: an offline HTML atlas rendered from the saved files of a run directory.

`render_atlas(run_dir)` reads run.json, metrics.jsonl, summary.json, layers.npz/json and
experiments/*/result.json (whichever exist) and writes run_dir/atlas/index.html and its pages.
It never builds or calls a model (docs/DESIGN.md, "compute and render apart").
"""

from __future__ import annotations

from convscope.report.html import render_atlas

__all__ = ["render_atlas"]
