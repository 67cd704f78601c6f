"""`convscope lab`, `convscope train` and `convscope reproduce`: the commands that compute."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from convscope.cli.common import (
    Nproc,
    Quiet,
    Root,
    Sets,
    TrainSets,
    _console,
    _err,
    _interrupted_message,
    _left_to_launcher,
    app,
    flag,
    guarded,
    launch_workers,
)
from convscope.errors import UserError


@app.command()
@guarded
def lab(
    out: Annotated[Path, typer.Option("--out", help="Run directory.")] = Path("runs/lab"),
    retrain: Annotated[bool, flag("--retrain", help="Train again even if a checkpoint exists.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    quiet: Quiet = False,
) -> None:
    """Train LeNet-5 on MNIST and write the HTML atlas (what `make lab` runs).

    A second run reuses the cached data, the trained checkpoint and the experiment results.

    Example: `convscope lab --out runs/lab`
    """
    from dataclasses import replace

    from convscope.lab import LAB_TRAIN, run_lab

    t0 = time.perf_counter()
    index = run_lab(out, retrain=retrain, cfg=replace(LAB_TRAIN, device=device), progress=not quiet, log=typer.echo)
    typer.echo(f"lab finished in {time.perf_counter() - t0:.1f}s")
    typer.secho(f"atlas: {index.resolve()}", bold=True)

@app.command()
@guarded
def train(
    model: Annotated[str, typer.Argument(help="Zoo name (see `convscope summary --list`), path/to/file.py:factory "
                                              "or package.module:factory.")],
    data: Annotated[str, typer.Option("--data", help="Dataset name.")] = "mnist",
    weights: Annotated[Path | None, typer.Option(help="Start from these weights (safetensors, a state dict, or "
                                                 "torchvision's file).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the training set [default: 3].")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size [default: 256].")] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd, adam or adagrad [default: adam].")] = None,
    lr: Annotated[float | None, typer.Option(help="(Peak) learning rate [default: 0.02].")] = None,
    schedule: Annotated[str | None, typer.Option(help="onecycle, cosine or constant [default: onecycle].")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed: init and batch order [default: 0].")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N (default: $CONVSCOPE_DEVICE "
                                                    "or auto).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default runs/MODEL-DATA).")] = None,
    resume: Annotated[bool, flag("--resume", help="Continue the run in --out from its last "
                                         "checkpoint.")] = False,
    overwrite: Annotated[bool, flag("--overwrite", help="Replace whatever run --out holds.")] = False,
    config: Annotated[Path | None, typer.Option(help="TOML file of TrainConfig fields.")] = None,
    set_: TrainSets = None,
    root: Root = None,
    nproc: Nproc = 1,
    sync_bn: Annotated[bool, flag("--sync-bn", help="With several GPU processes, normalise BatchNorm layers with "
                                  "the statistics of the whole global batch (nn.SyncBatchNorm); without it each "
                                  "process uses its own part's. Refused on the CPU.")] = False,
    quiet: Quiet = False,
) -> None:
    """Train a model; metrics go to OUT/metrics.jsonl and a checkpoint is saved every epoch.

    Then `convscope report OUT` renders the run's HTML atlas.

    Example: `convscope train lenet5 --data mnist --epochs 3 --out runs/lenet5`

    Example: `convscope train lenet5 --set train_subset=6000 --set test_subset=1000 --epochs 1`
    (a quick run on class-balanced subsets)

    Example: `convscope train lenet5 --out runs/lenet5 --resume` (after Ctrl-C)

    Example: `convscope train my_nets.py:small_cnn --data cifar10 --root ~/data` (your own model: the factory
    gets in_channels and num_classes when it takes them)

    Example: `convscope train lenet5 --nproc 2 --batch-size 256` (two processes, 128 examples each per step;
    `torchrun --nproc-per-node 2 -m convscope train lenet5` is the same, and spans machines with --nnodes)
    """
    import os

    from convscope.config import TrainConfig, resolve

    device = device or os.environ.get("CONVSCOPE_DEVICE")
    cfg = resolve(TrainConfig, config, set_, model=model, data=data, epochs=epochs, batch_size=batch_size,
                  optimizer=optimizer, lr=lr, schedule=schedule, seed=seed, device=device,
                  weights=str(weights) if weights is not None else None, sync_bn=sync_bn or None)
    out = out or Path("runs") / f"{cfg.model.rpartition(':')[2]}-{cfg.data}"  # path/file.py:factory → factory
    if cfg.sync_bn and nproc > 1:
        from convscope.train.distributed import SYNC_BN_NEEDS_CUDA
        from convscope.train.loop import resolve_device

        if resolve_device(cfg.device).type != "cuda":
            raise UserError(SYNC_BN_NEEDS_CUDA)
    if launch_workers(nproc, _train_argv(cfg, out, resume, overwrite, root, quiet), run_dir=out,
                      batch_size=cfg.batch_size):
        return
    outcome = _train(cfg, out, resume, overwrite, root, quiet)
    if int(os.environ.get("RANK", "0")) != 0:  # a worker of a distributed run: rank 0 reports it
        return
    final = outcome.final
    typer.echo(f"test accuracy {final.get('test_acc', float('nan')):.4f} after epoch {final.get('epoch')}; "
               f"run saved in {out}")
    typer.echo(f"render its atlas with: convscope report {out}")

def _train(cfg: Any, out: Path, resume: bool, overwrite: bool, root: Path | None, quiet: bool):
    # A separate frame so the Ctrl-C handler in `guarded` knows the run directory.
    from convscope.train.distributed import local_device, process_group
    from convscope.train.loop import resolve_device
    from convscope.train.run import train_run

    try:
        with process_group(local_device(resolve_device(cfg.device))):  # joins torchrun's group, if any
            return train_run(cfg, out, resume=resume, overwrite=overwrite, root=root, progress=not quiet)
    except KeyboardInterrupt:
        if not _left_to_launcher(None):
            _err(_interrupted_message(out))
        raise typer.Exit(2) from None


def _train_argv(cfg: Any, out: Path, resume: bool, overwrite: bool, root: Path | None, quiet: bool) -> list[str]:
    """The `convscope train` command a worker runs: this one's resolved config, every field as a --set."""
    import json

    from convscope.config import to_dict

    sets = [f"--set={k}={v if isinstance(v, str) else json.dumps(v)}"
            for k, v in to_dict(cfg).items() if k != "model"]
    flags = [*(["--resume"] if resume else []), *(["--overwrite"] if overwrite else []),
             *(["--root", str(root)] if root is not None else []), *(["-q"] if quiet else [])]
    return ["train", cfg.model, "--out", str(out), *sets, *flags]


@app.command()
@guarded
def reproduce(
    name: Annotated[str, typer.Argument(help="Experiment name (see `convscope reproduce --list`).")] = "",
    out: Annotated[Path | None, typer.Option("--out", help="Output directory "
                                             "(default runs/reproduce/NAME).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of the experiment's config.")] = None,
    set_: Sets = None,
    width: Annotated[float | None, typer.Option(
        help="Scale every model's filter counts (experiments with a `width` setting, e.g. crelu: "
             "1 is the paper's size, for a GPU; the default is sized for a CPU).")] = None,
    list_: Annotated[bool, flag("--list", help="List the experiments.")] = False,
    quiet: Quiet = False,
) -> None:
    """Run a published experiment; writes OUT/result.json and prints measured beside published figures.

    Example: `convscope reproduce lenet5 --out runs/lenet5-repro`

    Example: `convscope reproduce lenet5 --set seeds=0 --set train.epochs=1`

    Example: `convscope reproduce crelu --width 1 --set train.data=cifar10 --set root=~/data`
    (a folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz)
    """
    from convscope.config import resolve
    from convscope.experiments import get_experiment, list_experiments, run_experiment

    if list_ or not name:
        for n in list_experiments():
            typer.echo(f"{n:12s} {get_experiment(n).title}")
        return
    exp = get_experiment(name)
    if width is not None:
        if "width" not in {f.name for f in dataclasses.fields(exp.config)}:
            raise UserError(f"Experiment {name} has no width setting: --width applies to crelu; leave it out.")
        set_ = [*(set_ or []), f"width={width}"]
    cfg = resolve(exp.config, config, set_)
    out = out or Path("runs") / "reproduce" / name
    result = run_experiment(name, out, cfg, progress=not quiet)
    _print_result(result)
    typer.secho(f"result: {(out / 'result.json').resolve()}", bold=True)

def _print_result(result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=result.title)
    for col in ("figure", "measured", "published", "source"):
        table.add_column(col)
    for key, value in result.metrics.items():
        pub = result.published.get(key)
        # escape: a list such as [input, features.conv1] would otherwise be read as rich markup
        table.add_row(key, escape(_fmt(value)), escape(_fmt(pub.value)) if pub else "",
                      escape(pub.source) if pub else "")
    _console().print(table)

def _fmt(value: Any, depth: int = 0) -> str:
    """A figure for the terminal: floats to 4 digits, long lists and dicts cut, nesting below one level left to
    result.json."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v, depth + 1) for v in value[:6]) + (", …" if len(value) > 6 else "") + "]"
    if isinstance(value, dict):
        if depth >= 2 or (depth == 1 and any(isinstance(v, dict | list) for v in value.values())):
            return "{… in result.json}"
        items = list(value.items())
        return ("{" + ", ".join(f"{k}: {_fmt(v, depth + 1)}" for k, v in items[:8])
                + (", …" if len(items) > 8 else "") + "}")
    return str(value)
