"""`convscope lab` (what `make lab` runs): train LeNet-5 on MNIST and write the atlas.

The steps, each skipped when its output is already on disk (so a second `make lab` is quick):
1. train LeNet-5 on MNIST into `runs/lab` (checkpoint reused unless `retrain`);
2. run every experiment that has a lab-sized config into `runs/lab/experiments/NAME` (result
   reused unless `retrain`): an experiment's config class joins the lab by defining a classmethod
   `lab()` that returns a version of its protocol that fits the lab's budget (fewer seeds, data
   subsets); `convscope reproduce NAME` always runs the full one. An experiment whose data cannot
   be had (Fashion-MNIST offline without Debian's `dataset-fashion-mnist`) is skipped with a message;
3. render the atlas from the saved files and return the path of its index.html.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from convscope.config import TrainConfig
from convscope.errors import DataError
from convscope.experiments import get_experiment, list_experiments, run_experiment
from convscope.io import write_json
from convscope.report import render_atlas
from convscope.train.run import train_run


def lab_experiments() -> list[str]:
    """The experiments whose config defines a lab-sized version (`lab()`), in name order."""
    return [n for n in list_experiments() if hasattr(get_experiment(n).config, "lab")]


def lab_config(name: str) -> Any:
    """The lab-sized config of experiment `name`: its config class's `lab()`."""
    return get_experiment(name).config.lab()


# The lab's own model: the fast LeNet-5 recipe over two epochs (about 99 % on MNIST), so the whole lab fits
# its three minutes on a 2-core CPU; `convscope train lenet5` runs the three-epoch recipe.
LAB_TRAIN = TrainConfig(model="lenet5", data="mnist", epochs=2, keep_epochs=True)  # zf draws the evolution


def run_lab(out_dir: str | Path = "runs/lab", *, retrain: bool = False, cfg: TrainConfig | None = None,
            experiments: list[str] | None = None, experiment_configs: dict[str, Any] | None = None,
            progress: bool = True,
            log: Callable[[str], None] = lambda _: None) -> Path:
    """Run the lab pipeline into `out_dir`; returns the atlas's index.html.

    `experiments` names the experiments to run (default: all, `lab_experiments()`);
    `experiment_configs` replaces the lab config of the named ones (tests use it to run them small);
    an experiment whose config has a `train` field trains on `cfg.device`.

    Example:
        >>> index = run_lab("runs/lab")
        >>> index.name
        'index.html'
    """
    out_dir = Path(out_dir)
    cfg = cfg or LAB_TRAIN
    outcome = train_run(cfg, out_dir, reuse=not retrain, overwrite=retrain, progress=progress, kind="lab")
    acc = outcome.final.get("test_acc", float("nan"))
    log(f"{'trained' if outcome.trained else 'reused'} {cfg.model} on {cfg.data}: test accuracy {acc:.4f}")
    for name in experiments if experiments is not None else lab_experiments():
        exp_dir = out_dir / "experiments" / name
        if retrain or not (exp_dir / "result.json").exists():  # a skipped one is tried again
            log(f"running experiment {name}")
            exp_cfg = (experiment_configs or {}).get(name) or lab_config(name)
            if isinstance(getattr(exp_cfg, "train", None), TrainConfig):
                exp_cfg = replace(exp_cfg, train=replace(exp_cfg.train, device=cfg.device))
            if hasattr(exp_cfg, "run") and exp_cfg.run is None:  # an experiment on a trained model: the lab's
                exp_cfg = replace(exp_cfg, run=str(out_dir))
            try:
                result = run_experiment(name, exp_dir, exp_cfg, progress=progress)
            except DataError as e:  # e.g. Fashion-MNIST offline without Debian's package: the rest still runs
                log(f"skipped experiment {name}: {e}")
                # The atlas shows the skip, why, and the command that adds the experiment once the data is there.
                write_json(exp_dir / "skipped.json", {"reason": str(e), "command": f"convscope lab --out {out_dir}"})
                continue
            (exp_dir / "skipped.json").unlink(missing_ok=True)
            if name not in (experiment_configs or {}) and exp_cfg != get_experiment(name).config():
                result.notes.append(f"Lab-sized run (convscope lab): a quicker version of the protocol; "
                                    f"`convscope reproduce {name}` runs the full one.")
                result.save(exp_dir)
        else:
            log(f"reused experiment {name} from {exp_dir}")
    return render_atlas(out_dir)
