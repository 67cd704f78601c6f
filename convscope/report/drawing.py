"""Drawing the experiments' figures for the atlas: only when what they are drawn from changed, and in parallel.

Matplotlib takes most of an atlas's rendering time. Each experiment's figures are drawn from its saved
Result by its page (`report/pages/`); they are keyed by the SHA-256 of everything they depend on (the
result's files, the page's code, the shared figure code, the package version), and a later rendering
whose key matches reuses the PNGs already in the atlas instead of drawing them again. The experiments
that need drawing are drawn in worker processes, one per CPU core up to `workers`, each loading the
Result from disk itself (the same checks as `report/load.py`).

    atlas/img/exp-<slug>/<i>.png        the figures, in the page's order
    atlas/img/exp-<slug>/figures.json   {"key": ..., "figures": [[caption, file name, part, link], ...]}
"""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from convscope._version import __version__
from convscope.io import atomic_write_bytes, read_json, write_json
from convscope.report.load import _load_result
from convscope.report.pages import page_for

INDEX = "figures.json"


@dataclass
class Job:
    """One experiment whose figures the atlas shows."""

    slug: str
    root: Path  # the run directory
    dir: Path  # the experiment's folder inside it
    name: str  # the Result's name: which page draws it


def figure_key(job: Job) -> str:
    """SHA-256 of the result's files, the code that draws them and the package version."""
    h = hashlib.sha256(__version__.encode())
    page = importlib.import_module(type(page_for(job.name)).__module__)
    for path in (job.dir / "result.json", job.dir / "result.npz", Path(page.__file__),
                 Path(__file__).with_name("figures.py"), Path(__file__).parent / "pages" / "__init__.py"):
        h.update(path.name.encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


Drawn = tuple[str, str, str, str]  # caption, file (relative to img/), part, link


def _cached(folder: Path, key: str) -> list[Drawn] | None:
    """The (caption, file, part, link) list of a previous drawing with the same key, if all its files are still
    there."""
    try:
        index = read_json(folder / INDEX)
        figures = [(str(c), str(f), str(part), str(link)) for c, f, part, link in index["figures"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if index.get("key") != key or not all((folder / f).is_file() and "/" not in f for _, f, _, _ in figures):
        return None
    return figures


def _draw(job: Job) -> list[tuple[str, bytes, str, str]]:
    """The figures of one experiment, drawn from its saved Result (runs in a worker process)."""
    result = _load_result(job.root, job.dir, [])
    return [(f.caption, f.png, f.part, f.link) for f in page_for(result.name).figures(result)]


def draw_figures(jobs: list[Job], img_dir: Path, workers: int | None = None) -> dict[str, list[Drawn]]:
    """Draw (or reuse) every job's figures under `img_dir/exp-<slug>/`; returns slug → [(caption, path
    relative to img_dir, part, link)]. `workers` defaults to the CPU count, capped at the number of experiments
    to draw."""
    out: dict[str, list[Drawn]] = {}
    keys = {job.slug: figure_key(job) for job in jobs}
    todo = []
    for job in jobs:
        cached = _cached(img_dir / f"exp-{job.slug}", keys[job.slug])
        if cached is None:
            todo.append(job)
        else:
            out[job.slug] = [(c, f"exp-{job.slug}/{f}", part, link) for c, f, part, link in cached]
    n = min(len(todo), workers or os.cpu_count() or 1)
    if n > 1:
        # spawn, not fork: the caller (the lab) may hold torch's thread pools, which do not survive a fork
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
            drawn = list(pool.map(_draw, todo))
    else:
        drawn = [_draw(job) for job in todo]
    for job, figures in zip(todo, drawn, strict=True):
        folder = img_dir / f"exp-{job.slug}"
        names = []
        for i, (caption, png, part, link) in enumerate(figures):
            atomic_write_bytes(folder / f"{i}.png", png)
            names.append((caption, f"{i}.png", part, link))
        write_json(folder / INDEX, {"key": keys[job.slug], "figures": names})
        out[job.slug] = [(c, f"exp-{job.slug}/{f}", part, link) for c, f, part, link in names]
    return out


__all__ = ["INDEX", "Drawn", "Job", "draw_figures", "figure_key"]
