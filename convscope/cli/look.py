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
    model: Annotated[str | None, typer.Argument(help="Zoo name, path/to/file.py:factory or "
                                                "package.module:factory.")] = None,
    weights: Annotated[Path | None, typer.Option(help="Check that these weights fit the model (safetensors, a "
                                                 "state dict, or torchvision's file).")] = None,
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

    Example: `convscope summary my_nets.py:small_cnn --input 3x32x32` (your own model)
    """
    import json

    from convscope.models import list_models
    from convscope.models.loading import load_model
    from convscope.models.summary import summarize

    if list_ or model is None:
        for name in list_models():
            typer.echo(f"{name:16s} {_arguments_line(name)}".rstrip())
        return
    model_args = _model_args(set_)
    shape = _parse_shape(input) if input else None
    if shape is not None:
        model_args.setdefault("in_channels", shape[0])
    net = load_model(model, weights=weights, **model_args)
    if shape is None and getattr(net, "input_shape", None) is None:
        raise UserError(f"{model} does not state its input shape: give it with --input CxHxW (e.g. 3x32x32).")
    s = summarize(net, shape)
    if as_json:
        typer.echo(json.dumps(s.to_dict(), indent=2))
        return
    _print_summary(model, s)
    if weights is not None:
        typer.echo(f"weights {weights} fit the model.")

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


@app.command()
@guarded
def explain(
    method: Annotated[str, typer.Argument(help="Explanation method (see `convscope explain --list`).")] = "",
    model: Annotated[str, typer.Argument(help="Zoo name, path/to/file.py:factory or package.module:factory.")] = "",
    weights: Annotated[Path | None, typer.Option(help="Weights: safetensors, a state dict (read with "
                                                 "weights_only=True) or torchvision's ImageNet file.")] = None,
    run: Annotated[Path | None, typer.Option(help="A run directory (convscope train/lab): its model and last "
                                             "checkpoint, in place of MODEL and --weights.")] = None,
    image: Annotated[str | None, typer.Option(help="An image file (PNG, JPEG) or sample:NAME (chelsea, "
                                              "astronaut, coffee, camera…).")] = None,
    index: Annotated[int | None, typer.Option(help="Explain test image N of --data instead.")] = None,
    data: Annotated[str, typer.Option(help="Dataset of --index; also gives the model its channels and "
                                      "classes.")] = "mnist",
    target: Annotated[str | None, typer.Option(help="A class index, or a unit LAYER:CHANNEL[:Y:X] "
                                               "(default: the predicted class).")] = None,
    layer: Annotated[str | None, typer.Option(help="The conv layer of gradcam/guided_gradcam (default: the "
                                              "last).")] = None,
    size: Annotated[str | None, typer.Option(help="Input size HxW when the model does not state one.")] = None,
    invert: Annotated[bool, flag("--invert", help="Invert the image (1 − x): MNIST digits are white on "
                                 "black.")] = False,
    normalize: Annotated[str | None, typer.Option(help="imagenet: normalise with ImageNet's mean and std "
                                                  "(torchvision's weights expect it).")] = None,
    out: Annotated[Path, typer.Option("--out", help="The PNG to write: input, map and overlay.")] = Path(
        "explanation.png"),
    list_: Annotated[bool, flag("--list", help="List the methods.")] = False,
    set_: ModelSets = None,
) -> None:
    """Explain one input: which pixels a model's decision (or a unit's activation) rests on.

    Example: `convscope explain gradcam --run runs/lab --index 0` (the lab's trained LeNet-5)

    Example: `convscope explain guided_backprop vgg16 --weights vgg16-397923af.pth --image cat.jpg
    --normalize imagenet --out cat-gbp.png`

    Example: `convscope explain saliency my_nets.py:small_cnn --image digit.png --invert --target 3`

    Example: `convscope explain deconvnet lenet5 --index 7 --target features.conv2:5` (project a feature map)
    """
    import numpy as np
    import torch

    from convscope.explain import LAYER_METHODS, create_method, list_methods

    if list_ or not method:
        for name, about in list_methods().items():
            typer.echo(f"{name:22s} {about}")
        return
    if method not in list_methods():
        create_method(method, torch.nn.Identity())  # the unknown-name error, with suggestions
    if not model and run is None:
        raise UserError("Name the model to explain: a zoo name (convscope summary --list), path/file.py:factory, "
                        "or --run DIR for a trained run.")
    if (image is None) == (index is None):
        raise UserError("Give exactly one input: --image FILE (or sample:NAME) or --index N of --data's test set.")
    if run is not None:
        from convscope.train.run import load_run_model

        net, cfg = load_run_model(run)
        model, data = net, cfg.data
        if size is None and (run / "run.json").is_file():  # the run knows its input size
            from convscope.io import read_json

            shape = read_json(run / "run.json").get("provenance", {}).get("input_shape")
            size = "x".join(map(str, shape[1:])) if isinstance(shape, list) and len(shape) == 3 else None
    net, x, label, how, classes = _explain_input(model, weights, image, index, data, size, invert, normalize,
                                                 _model_args(set_))
    if run is None and weights is None:
        typer.secho("note: the model has random weights (give --weights FILE or --run DIR to explain a trained "
                    "one).", fg=typer.colors.YELLOW, err=True)
    with torch.no_grad():
        logits = net.eval()(x)
    pred = int(logits.argmax(1))
    unit = _parse_target(target)
    explained = pred if unit is None else unit
    m = create_method(method, net, layer=layer if method in LAYER_METHODS else None)
    attribution = m.attribute(x, explained)[0].sum(0).detach().cpu().numpy()
    name = lambda k: classes[k] if classes and 0 <= k < len(classes) else str(k)  # noqa: E731
    what = f"class {name(explained)}" if isinstance(explained, int) else f"unit {target}"
    title = (f"{method} of {what}; predicted {name(pred)} (p = {float(logits.softmax(1)[0, pred]):.3f})"
             + (f", true {name(label)}" if label is not None else ""))
    from convscope.io import atomic_write_bytes
    from convscope.report.figures import explanation_panel

    atomic_write_bytes(out, explanation_panel(x[0].cpu().numpy(), np.asarray(attribution), title,
                                              cam=method == "gradcam"))
    typer.echo(f"input: {how}")
    typer.echo(title)
    typer.secho(f"explanation: {out.resolve()}", bold=True)


def _explain_input(model: Any, weights: Path | None, image: str | None, index: int | None, data: str,
                   size: str | None, invert: bool, normalize: str | None, model_args: dict[str, Any]):
    """The model, the (1, C, H, W) input, its true label (for --index), how it was prepared, the class names.

    `model` is a reference, or a model already loaded from a run directory."""
    import torch

    from convscope.data import dataset_info, load_dataset
    from convscope.data.images import read_image
    from convscope.models.loading import load_model

    classes: list[str] | None = None
    label = None
    if isinstance(model, torch.nn.Module):  # a run's model, already loaded
        net = model
    else:
        if index is not None:
            info = dataset_info(data)
            model_args.setdefault("in_channels", info["shape"][0])
            model_args.setdefault("num_classes", info["num_classes"])
        net = load_model(model, weights=weights, **model_args)
    shape = getattr(net, "input_shape", None)
    if index is not None:
        test = load_dataset(data, "test")
        if not 0 <= index < len(test):
            raise UserError(f"--index {index} is outside {data}'s test set (0..{len(test) - 1}).")
        x, y = test.tensors()
        x, label, classes = x[index:index + 1], int(y[index]), list(test.classes)
        how = f"test image {index} of {data} (true class {classes[label]}), scaled to [0, 1]"
        if invert:
            x, how = 1 - x, how + ", inverted"
    else:
        channels = shape[0] if shape else _first_conv_channels(net)
        hw = _parse_hw(size) if size else (tuple(shape[1:]) if shape else None)
        if hw is None:
            what = type(net).__name__ if isinstance(model, torch.nn.Module) else model
            raise UserError(f"{what} does not state its input size: give it with --size HxW (e.g. --size 32x32).")
        arr, how = read_image(image, channels, hw, invert=invert, normalize=normalize)
        x = torch.from_numpy(arr)[None]
    p = next(iter(net.parameters()), None)
    return net, (x.to(p.dtype) if p is not None else x), label, how, classes


def _first_conv_channels(net: Any) -> int:
    import torch

    conv = next((m for m in net.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if conv is None:
        raise UserError("The model has no Conv2d to read its input channels from: give --size and a model whose "
                        "first layer is a convolution.")
    return conv.in_channels


def _parse_hw(text: str) -> tuple[int, int]:
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"--size {text!r} is not HxW of positive integers: write e.g. 28x28.")
    return int(parts[0]), int(parts[1])


def _parse_target(text: str | None) -> int | tuple | None:
    """None (the predicted class), a class index, or a unit LAYER:CHANNEL[:Y:X]."""
    if text is None:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    layer, *rest = text.split(":")
    if len(rest) not in (1, 3) or not all(r.isdigit() for r in rest):
        raise UserError(f"--target {text!r} is neither a class index nor a unit LAYER:CHANNEL or "
                        "LAYER:CHANNEL:Y:X (e.g. features.conv2:5).")
    return (layer, *map(int, rest))
