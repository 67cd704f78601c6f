"""A training *run*: data, model, `fit`, and everything written into its run directory.

`train_run` is what `convscope train` and `convscope lab` call. It owns the run-directory rules:
a directory that holds a different run is refused unless `overwrite=True`; the same run is resumed
with `resume=True`, reused as it is when complete (`reuse=True`, what `lab` does), and otherwise
refused with a sentence saying which flag to pass. After training it saves what the atlas needs
(`run.json`, `summary.json`, `layers.npz`/`layers.json`; layout in convscope/io.py).

In a process group (train/distributed.py) every rank runs `train_run` alike, on its own device
(`cuda:LOCAL_RANK` on GPUs); rank 0 alone writes, and the run directory must be one every rank sees.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from convscope.config import TrainConfig, from_dict, to_dict
from convscope.data import load_dataset
from convscope.errors import RunDirError, UserError
from convscope.hooks import activations, conv_layers, conv_weight, eval_mode, model_device
from convscope.io import read_json, read_jsonl, save_npz, write_json
from convscope.models import model_kwargs
from convscope.models.loading import build, load_weights
from convscope.models.summary import summarize
from convscope.result import versions
from convscope.train.checkpoint import has_checkpoint, load_checkpoint, restore
from convscope.train.distributed import barrier, local_device, world
from convscope.train.loop import FitResult, fit, resolve_device

ATLAS_SAMPLES = 6  # test images whose activation maps the atlas shows


@dataclass
class RunOutcome:
    """What a run directory holds after `train_run`."""

    out_dir: Path
    model: nn.Module
    history: list[dict[str, Any]]
    trained: bool  # False when a finished run was reused

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def load_data(cfg: TrainConfig, root: str | Path | None = None, progress: bool = False):
    """Train and test tensors (float in [0, 1]) plus a provenance dict with the data checksums."""
    train = load_dataset(cfg.data, "train", root=root, progress=progress)
    test = load_dataset(cfg.data, "test", root=root, progress=progress)
    if cfg.train_subset:
        train = train.subset(cfg.train_subset, seed=cfg.seed)
    if cfg.test_subset:
        test = test.subset(cfg.test_subset, seed=cfg.seed)
    info = {"dataset": cfg.data, "train_checksum": train.checksum, "test_checksum": test.checksum,
            "train_size": len(train), "test_size": len(test), "source": train.source, "classes": train.classes}
    return train.tensors(), test.tensors(), info


def build_model(cfg: TrainConfig, in_channels: int, num_classes: int, device: torch.device) -> nn.Module:
    """Create the configured model with a seeded initialisation on `device`."""
    torch.manual_seed(cfg.seed)
    model = build(cfg.model, in_channels=in_channels, num_classes=num_classes, **cfg.model_args)
    if cfg.weights is not None:
        load_weights(model, cfg.weights)
    return model.to(device)


def train_run(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
              reuse: bool = False, root: str | Path | None = None, progress: bool = True,
              kind: str = "train") -> RunOutcome:
    """Train `cfg` into `out_dir` (see the module docstring for the directory rules).

    Example:
        >>> outcome = train_run(TrainConfig(epochs=2), "runs/lenet5")
        >>> outcome.final["test_acc"]
    """
    out_dir = Path(out_dir)
    _check_model_args(cfg)  # before the data is loaded: a wrong --set fails at once
    config = to_dict(cfg)
    state = _existing_state(out_dir)
    if state is not None and not overwrite:
        if _comparable(state["config"], resume) != _comparable(config, resume):
            raise RunDirError(f"{out_dir} already holds a different run ({state['config'].get('model')} on "
                              f"{state['config'].get('data')}, seed {state['config'].get('seed')}): choose another "
                              "--out or pass --overwrite to replace it.")
        finished = state["epoch"] >= cfg.epochs
        if not (resume or (reuse and finished)):
            hint = "it is complete; pass --overwrite to train again" if finished else "pass --resume to continue it"
            raise RunDirError(f"{out_dir} already holds this run (epoch {state['epoch']}/{cfg.epochs}): {hint}.")
    elif overwrite and out_dir.exists() and world().main:
        for sub in ("checkpoint", "metrics.jsonl", "run.json", "summary.json", "layers.npz", "layers.json"):
            p = out_dir / sub
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)

    barrier()  # every rank has read the directory before rank 0 trains into it
    t0 = time.perf_counter()
    device = local_device(resolve_device(cfg.device))
    w = world()
    if not w.main:
        barrier()  # rank 0 fetches and caches the data first; the others then read the cache
    (x_train, y_train), (x_test, y_test), data_info = load_data(cfg, root=root, progress=progress and w.main)
    if w.main:
        barrier()
    model = build_model(cfg, in_channels=x_train.shape[1], num_classes=len(data_info["classes"]), device=device)
    provenance = {"seed": cfg.seed, "versions": versions(), "device": str(device),
                  "input_shape": list(x_train.shape[1:]),
                  "data_checksum": data_info["train_checksum"], "data": data_info,
                  "world_size": w.size, "threads_per_process": torch.get_num_threads()}

    if state is not None and not overwrite and state["epoch"] >= cfg.epochs:
        ckpt = load_checkpoint(out_dir / "checkpoint", map_location=device)
        restore(ckpt, model)
        model.eval()
        history, trained = read_jsonl(out_dir / "metrics.jsonl"), False
        train_seconds = ckpt.extra.get("train_seconds", 0.0)
    else:
        fit_result: FitResult = fit(model, (x_train, y_train), (x_test, y_test), cfg, out_dir=out_dir,
                                    resume=resume, provenance=provenance, progress=progress)
        history, trained, train_seconds = fit_result.history, True, fit_result.train_seconds
        model.eval()  # the run's own model, handed back ready to use, as a reused one is

    if not w.main:
        return RunOutcome(out_dir=out_dir, model=model, history=history, trained=trained)
    write_atlas_inputs(model, out_dir, x_test, y_test, data_info["classes"])
    wall = time.perf_counter() - t0
    if not trained:  # a reused run keeps the wall time of the run that trained it, not of this reuse
        wall = _saved_wall_seconds(out_dir) or wall
    write_json(out_dir / "run.json", {
        "kind": kind, "model": cfg.model, "dataset": cfg.data, "config": config,
        "provenance": {**provenance, "train_seconds": train_seconds, "wall_seconds": wall},
        "final": history[-1] if history else {},
    })
    return RunOutcome(out_dir=out_dir, model=model, history=history, trained=trained)


def _saved_wall_seconds(out_dir: Path) -> float | None:
    """The wall time an earlier run.json in `out_dir` recorded, if it is readable."""
    try:
        value = read_json(out_dir / "run.json")["provenance"]["wall_seconds"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def write_atlas_inputs(model: nn.Module, out_dir: Path, x_test: torch.Tensor, y_test: torch.Tensor,
                       classes: list[str], n: int = ATLAS_SAMPLES) -> None:
    """Save the model summary and, for a few test images, every conv layer's filters and maps.

    The model runs in eval mode; each module's own mode is restored.
    """
    input_shape = tuple(x_test.shape[1:])
    write_json(out_dir / "summary.json", summarize(model, input_shape).to_dict())
    names = conv_layers(model)
    # One example of each of the first n classes makes the maps comparable across digits.
    picks = [int((y_test == c).nonzero()[0]) for c in range(n) if (y_test == c).any()]
    x = x_test[picks]
    acts = activations(model, x, names)
    with torch.no_grad(), eval_mode(model):
        preds = model(x.to(model_device(model))).argmax(1).cpu()
    arrays: dict[str, np.ndarray] = {"images": x.cpu().numpy(), "labels": y_test[picks].cpu().numpy(),
                                     "preds": preds.numpy()}
    for name in names:
        arrays[f"{name}.weight"] = conv_weight(model.get_submodule(name)).detach().cpu().numpy()
        arrays[f"{name}.act"] = acts[name].cpu().numpy()
    save_npz(out_dir / "layers.npz", **arrays)
    write_json(out_dir / "layers.json", {"conv_layers": names, "classes": classes})


def load_run_model(out_dir: str | Path, device: str = "cpu") -> tuple[nn.Module, TrainConfig]:
    """Rebuild the model of a finished run from its checkpoint, in eval mode on `device`."""
    if not (Path(out_dir) / "checkpoint").is_dir():
        raise UserError(f"{out_dir} holds no checkpoint: give a run directory written by convscope train or lab.")
    ckpt = load_checkpoint(Path(out_dir) / "checkpoint", map_location=device)
    cfg = from_dict(TrainConfig, ckpt.config)
    data = ckpt.provenance.get("data", {})
    in_channels = ckpt.provenance.get("input_shape", [1])[0]
    model = build(cfg.model, in_channels=in_channels, num_classes=len(data.get("classes", range(10))),
                  **cfg.model_args)
    restore(ckpt, model)
    return model.to(device).eval(), cfg


Data = tuple[torch.Tensor, torch.Tensor]


def model_of_run(run: str | Path, device: str = "cpu", root: str | Path | None = None, progress: bool = False,
                 test_subset: int | None = None) -> tuple[nn.Module, TrainConfig, Data, Data, dict[str, Any]]:
    """The model of a finished run (a directory written by `convscope train` or the lab) in eval mode on
    `device`, its config, and its data: the whole training set and the test set (`test_subset` images of it),
    read from `root` if given; `load_data`'s description last."""
    model, cfg = load_run_model(run, device=device)
    cfg = replace(cfg, train_subset=None, test_subset=test_subset)
    train, test, info = load_data(cfg, root=root, progress=progress)
    return model, cfg, train, test, info


def train_here(cfg: TrainConfig, out_dir: str | Path | None = None, root: str | Path | None = None,
               progress: bool = False) -> tuple[nn.Module, Data, Data, dict[str, Any], float]:
    """`cfg`'s model trained on its data (read from `root` if given; checkpoints into `out_dir` if given), in
    eval mode: the model, the training and test data, `load_data`'s description and the seconds training took."""
    train, test, info = load_data(cfg, root=root, progress=progress)
    model = build_model(cfg, train[0].shape[1], len(info["classes"]), resolve_device(cfg.device))
    result = fit(model, train, test, cfg, out_dir=out_dir, progress=progress)
    return model.eval(), train, test, info, result.train_seconds


def _check_model_args(cfg: TrainConfig) -> None:
    from_data = sorted({"in_channels", "num_classes"} & set(cfg.model_args))
    if from_data:
        raise UserError(f"model_args.{from_data[0]} comes from the dataset ({cfg.data}): leave it out of "
                        "--set; choose the data with --data.")
    if ":" not in cfg.model:  # a zoo model: its arguments are known before any data is read
        model_kwargs(cfg.model, cfg.model_args)


def _existing_state(out_dir: Path) -> dict[str, Any] | None:
    if not has_checkpoint(out_dir / "checkpoint"):
        return None
    try:
        return read_json(out_dir / "checkpoint" / "state.json")
    except ValueError:
        return None  # an unreadable state.json is reported when the checkpoint is loaded


def _comparable(config: dict[str, Any], resume: bool) -> dict[str, Any]:
    # The device, and whether earlier epochs' weights are kept, do not change what a run is; a resumed run
    # may also be extended to more epochs (the learning-rate schedule then stretches over the new total from
    # the resumed step on). A field added since the run was saved takes its default.
    ignore = {"device", "keep_epochs", "epochs"} if resume else {"device", "keep_epochs"}
    return {k: v for k, v in {**to_dict(TrainConfig()), **config}.items() if k not in ignore}
