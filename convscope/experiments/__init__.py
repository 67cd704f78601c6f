"""Experiments: one file per study, each a function `(cfg, out_dir, progress) -> Result`.

`convscope reproduce NAME --out DIR` looks NAME up here, runs it, and saves its Result (the contract
is in result.py). Each experiment prints nothing itself: the CLI prints the measured figures beside
the published ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from convscope.errors import unknown_name
from convscope.result import Published, Result


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    run: Callable[..., Result]
    config: type  # the experiment's config dataclass


_EXPERIMENTS: dict[str, Experiment] = {}


Runner = Callable[..., Result]


def register_experiment(name: str, title: str, config: type) -> Callable[[Runner], Runner]:
    """Register an experiment function under `name` with its config dataclass (decorator)."""

    def wrap(fn: Callable[..., Result]) -> Callable[..., Result]:
        _EXPERIMENTS[name] = Experiment(name, title, fn, config)
        return fn

    return wrap


def get_experiment(name: str) -> Experiment:
    _load_builtin()
    if name not in _EXPERIMENTS:
        raise unknown_name("experiment", name, _EXPERIMENTS)
    return _EXPERIMENTS[name]


def list_experiments() -> list[str]:
    _load_builtin()
    return sorted(_EXPERIMENTS)


def run_experiment(name: str, out_dir: str | Path, cfg: Any = None, progress: bool = True) -> Result:
    """Run experiment `name` with config `cfg` (defaults if None) and save its Result into `out_dir`.

    A config with a `threads` field other than 0 runs with that many PyTorch intra-op threads, restored
    afterwards: CPU results are bit-identical for a seed only at the same thread count (and instruction set,
    both recorded in the provenance), so an experiment that pins it reproduces its saved figures.
    """
    exp = get_experiment(name)
    cfg = cfg if cfg is not None else exp.config()
    before = torch.get_num_threads()
    if getattr(cfg, "threads", 0):
        torch.set_num_threads(cfg.threads)
    try:
        result = exp.run(cfg, Path(out_dir), progress=progress)
    finally:
        torch.set_num_threads(before)
    result.save(out_dir)
    return result


def _load_builtin() -> None:
    # Importing each module of this package runs its @register_experiment decorator.
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name != "result":
            importlib.import_module(f"{__name__}.{info.name}")


__all__ = ["Experiment", "Published", "Result", "get_experiment", "list_experiments", "register_experiment",
           "run_experiment"]
