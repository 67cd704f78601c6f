"""The `convscope` command line (Typer): the app, the options every command shares, and the error guard.

Every user mistake is a `UserError`: the command prints its one sentence and exits with status 2,
without a traceback. Ctrl-C during training keeps the last checkpoint and says how to resume.
The commands live beside this file: run.py (lab, train, reproduce), look.py (summary, report, explain),
data.py (data fetch/list/verify).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from convscope.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    help="convscope: a microscope for convolutional networks. Build, train and understand CNNs.\n\n"
         "Start with `convscope lab`, which trains LeNet-5 on MNIST and writes an HTML atlas.",
    no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

data_app = typer.Typer(help="Fetch, list and verify datasets (mnist, fashion-mnist, cifar10, cifar100).",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

def flag(*names: str, help: str) -> Any:  # noqa: A002 - typer's own keyword
    """A boolean option that is a bare switch: `--resume`, shown without a `<bool>` value nor a `--no-resume`."""
    return typer.Option(*names, help=help, metavar="")

Sets = Annotated[list[str] | None, typer.Option("--set", help="Override a config field: --set key=value "
                                                "(repeatable; dotted keys for nested configs).")]

TrainSets = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a TrainConfig field: --set key=value (repeatable). E.g. train_subset=6000 and "
                  "test_subset=1000 train and test on class-balanced subsets; model_args.activation=tanh sets a "
                  "model argument (`convscope summary --list` lists them); momentum, weight_decay, "
                  "label_smoothing, grad_clip, warmup, eval_batch_size; keep_epochs=true keeps every epoch's weights.")]

ModelSets = Annotated[list[str] | None, typer.Option(
    "--set", help="Set a constructor argument of the model: --set key=value (repeatable), e.g. num_classes=10, "
                  "in_channels=3, activation=tanh. `convscope summary --list` lists every model's arguments "
                  "and their defaults.")]

Quiet = Annotated[bool, flag("--quiet", "-q", help="No progress bars.")]

Nproc = Annotated[int, typer.Option("--nproc", help="Run on N processes on this machine through "
                                    "torch.distributed.run (gloo on the CPU, NCCL on GPUs: one GPU each); for "
                                    "several machines use torchrun ... -m convscope instead.")]

Root = Annotated[Path | None, typer.Option("--root", help="Directory holding the raw dataset files "
                                           "(else $CONVSCOPE_DATA, the cache, the mirrors).")]

def _err(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)

def guarded(fn: F) -> F:
    """Turn UserError into one printed sentence and exit 2; Ctrl-C likewise, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            if not _left_to_launcher(str(e)):
                _err(str(e))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            if not _left_to_launcher(None):
                _err(_interrupted_message(kwargs.get("out")))
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]

def _left_to_launcher(message: str | None) -> bool:
    """In a worker of a distributed run: hand `message` to the launcher, which prints one sentence for all.

    True when the launcher is convscope's own (`--nproc`); under plain torchrun each rank prints its own.
    """
    import os

    if "LOCAL_RANK" not in os.environ:  # not a worker: nothing to import
        return False
    from convscope.train.distributed import LAUNCHED_BY_CONVSCOPE, report_error

    if message is None:
        return os.environ.get(LAUNCHED_BY_CONVSCOPE) == "1"
    return report_error(message)

def _checkpoint_hint(out: Path | None) -> str:
    """What is left to resume in run directory `out`, as the second half of a sentence."""
    from convscope.io import read_json

    state = Path(out) / "checkpoint" / "state.json" if out else None
    if state is not None and state.is_file():
        epoch = read_json(state)["epoch"]
        return (f"the checkpoint of epoch {epoch} is kept in {state.parent}: run the same command with --resume "
                "to continue.")
    return "no checkpoint was saved yet, so there is nothing to resume."

def _interrupted_message(out: Path | None) -> str:
    hint = _checkpoint_hint(out)
    if hint.startswith("no checkpoint"):
        return "interrupted before the first checkpoint was saved; nothing to resume."
    return f"interrupted; {hint}"

def launch_workers(nproc: int, argv: list[str], *, run_dir: Path | None = None, batch_size: int | None = None) -> bool:
    """With --nproc N > 1, run `convscope ARGV` in N processes (torch.distributed.run); True once they finish.

    `run_dir` is a training run's directory, whose checkpoint a failure message points at; `batch_size`, a
    global batch that must split into N parts (checked before anyone starts).
    """
    from convscope.train.distributed import WorkerError, World, batch_slice, launch, launched

    if nproc < 1:
        raise UserError(f"--nproc must be at least 1, not {nproc}.")
    if nproc == 1:
        return False
    if launched():
        raise UserError("--nproc starts processes itself, and this one was started by torchrun: leave --nproc out "
                        "(torchrun's --nproc-per-node says how many processes run).")
    if batch_size is not None:
        batch_slice(0, batch_size, World(size=nproc))
    try:
        launch(argv, nproc)
    except WorkerError as e:
        hint = _checkpoint_hint(run_dir) if run_dir is not None else "nothing was written; run the command again."
        raise UserError(f"{e}; {hint}") from None
    except KeyboardInterrupt:
        _err(_interrupted_message(run_dir) if run_dir is not None else "interrupted; nothing was written.")
        raise typer.Exit(2) from None
    return True

def _console():
    from rich.console import Console

    # Piped output (files, CI logs) gets room for wide tables instead of rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=160)

def _parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().replace("×", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) <= 0:
        raise UserError(f"--input {text!r} is not a shape CxHxW of positive integers: write e.g. 1x28x28.")
    return shape  # type: ignore[return-value]

def _model_args(sets: list[str] | None) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for item in sets or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r} is not of the form key=value: write e.g. --set num_classes=10.")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out

def _echo_dict(info: Any) -> None:
    import json

    typer.echo(json.dumps(info, indent=2, default=str))

def main() -> None:
    """Console-script entry point."""
    app(prog_name="convscope")
