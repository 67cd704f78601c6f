"""`convscope lab` (what `make lab` runs): train LeNet-5 on MNIST and write the atlas.

The steps, each skipped when its output is already on disk (so a second `make lab` is quick):
1. train LeNet-5 on MNIST into `runs/lab` (checkpoint reused unless `retrain`);
2. run every lab experiment into `runs/lab/experiments/NAME` (result reused unless `retrain`);
3. render the atlas from the saved files and return the path of its index.html.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from convscope.config import TrainConfig
from convscope.experiments import get_experiment, run_experiment
from convscope.report import render_atlas
from convscope.train.run import train_run

LAB_EXPERIMENTS = ["lenet5"]


def run_lab(out_dir: str | Path = "runs/lab", *, retrain: bool = False, cfg: TrainConfig | None = None,
            experiment_configs: dict[str, Any] | None = None, progress: bool = True,
            log: Callable[[str], None] = lambda _: None) -> Path:
    """Run the lab pipeline into `out_dir`; returns the atlas's index.html.

    `experiment_configs` replaces the default config of the named lab experiments (tests use it to
    run them small); an experiment whose config has a `train` field trains on `cfg.device`.

    Example:
        >>> index = run_lab("runs/lab")
        >>> index.name
        'index.html'
    """
    out_dir = Path(out_dir)
    cfg = cfg or TrainConfig(model="lenet5", data="mnist")
    outcome = train_run(cfg, out_dir, reuse=not retrain, overwrite=retrain, progress=progress, kind="lab")
    acc = outcome.final.get("test_acc", float("nan"))
    log(f"{'trained' if outcome.trained else 'reused'} {cfg.model} on {cfg.data}: test accuracy {acc:.4f}")
    for name in LAB_EXPERIMENTS:
        exp_dir = out_dir / "experiments" / name
        if retrain or not (exp_dir / "result.json").exists():
            log(f"running experiment {name}")
            exp_cfg = (experiment_configs or {}).get(name) or get_experiment(name).config()
            if hasattr(exp_cfg, "train"):
                exp_cfg = replace(exp_cfg, train=replace(exp_cfg.train, device=cfg.device))
            run_experiment(name, exp_dir, exp_cfg, progress=progress)
        else:
            log(f"reused experiment {name} from {exp_dir}")
    return render_atlas(out_dir)
