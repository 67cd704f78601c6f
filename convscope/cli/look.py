"""`convscope summary`, `convscope report` and `convscope explain`: the commands that look at a model or a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from convscope.cli.common import ModelSets, _console, _model_args, _parse_shape, app, flag, guarded
from convscope.errors import UserError


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
