"""Layer-by-layer summary of a CNN: output shapes, parameters, connections, receptive fields, depth.

The counting conventions are LeCun et al.'s (Proc. IEEE 1998, §II.B), so `lenet5-classic`
reproduces the parameter and connection columns of docs/REFERENCE.md §2 exactly:

- parameters: the module's own (not its children's);
- connections: output elements × (inputs per output + 1 if the layer has a bias), per sample. For
  conv and fc layers that is every multiply-add plus the bias; for pooling, output elements × window
  (no bias, no parameters); for local response normalisation, output elements × its window of
  channels; element-wise layers (activations, batch norm, dropout, flatten) have none;
- receptive field (`rf`) and `jump` (the stride in input pixels between neighbouring outputs) are
  measured along H and follow the data through the graph (Inception branches included): a conv or
  pool with kernel k, stride s, dilation d maps (rf, jump) to (rf + (k−1)·d·jump, jump·s). They are
  the theoretical values, which may exceed the input with padding. Once the data is flattened or
  globally pooled, a layer sees the whole input: rf = jump = H;
- counted layers (docs/REFERENCE.md §1): conv and fully connected layers only; `depth` is the number of
  counted layers on the longest path from input to output (VGG-16: 16, LeNet-5: 5, AlexNet: 8,
  GoogLeNet: 22).

Rows are the leaf modules in the order they run. A custom module may define
`summary_counts(in_shape, out_shape) -> (params, connections)` (shapes without the batch
dimension); it is then one row, its children are not listed, and it counts as a layer if it sets
`summary_counted = True` (LeNet's C3, the RBF output). Modules that define `kernel_size` (and
optionally `stride`, `dilation`) get a receptive field like a conv.

The forward pass is traced with `analysis.hooks.trace_modules` (hooks removed in `finally`), and
each module's train/eval mode is restored, so the model leaves `summarize` exactly as it came in.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

from convscope.errors import InputShapeError
from convscope.hooks import eval_mode, trace_modules

_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.LPPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)


@dataclass
class LayerRow:
    """One row of a summary: a leaf module (or a custom composite layer) as it ran.

    Attributes:
        name: dotted name, addressable with `model.get_submodule`.
        type: class name of the module.
        output_shape: output shape without the batch dimension.
        params: the module's own parameters.
        connections: LeCun's connection count (see the module docstring).
        rf: receptive field along H, in input pixels.
        jump: distance along H, in input pixels, between neighbouring outputs.
        counted: a conv or fully connected layer (the layer-counting rule).
    """

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    connections: int
    rf: int
    jump: int
    counted: bool


@dataclass
class Summary:
    """A model's summary for one input shape.

    Attributes:
        rows: one per leaf module run, in forward order.
        total_params: all parameters of the model (each shared tensor once).
        trainable_params: those with `requires_grad`.
        depth: counted layers on the longest input-to-output path.
        input_shape: the `(C, H, W)` the summary was traced with.
    """

    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    depth: int
    input_shape: tuple[int, ...]
    total_connections: int = field(init=False)

    def __post_init__(self) -> None:
        self.total_connections = sum(r.connections for r in self.rows)

    def counted_layers(self) -> list[str]:
        """Names of the counted (conv and fully connected) layers, in forward order."""
        return [r.name for r in self.rows if r.counted]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (tuples become lists)."""
        return {
            "input_shape": list(self.input_shape),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_connections": self.total_connections,
            "depth": self.depth,
            "rows": [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.rows],
        }

    def to_table(self) -> list[list[str]]:
        """The rows as strings, header first, for printing (`counted` marked "yes")."""
        header = ["layer", "type", "output", "params", "connections", "rf", "jump", "counted"]
        body = [
            [
                r.name,
                r.type,
                "×".join(map(str, r.output_shape)),
                f"{r.params:,}",
                f"{r.connections:,}",
                str(r.rf),
                str(r.jump),
                "yes" if r.counted else "",
            ]
            for r in self.rows
        ]
        return [header, *body]

    def __str__(self) -> str:
        table = self.to_table()
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
        lines.append(
            f"input {'×'.join(map(str, self.input_shape))}; params {self.total_params:,} "
            f"({self.trainable_params:,} trainable); connections {self.total_connections:,}; depth {self.depth}"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class _Field:
    """What one tensor has seen: receptive field and jump along H, counted layers behind it."""

    rf: int
    jump: int
    depth: int

    def merge(self, other: _Field) -> _Field:
        return _Field(max(self.rf, other.rf), max(self.jump, other.jump), max(self.depth, other.depth))


@dataclass
class _Frame:
    """A module call in progress: the field of its input, and the fields produced inside it so far."""

    entry: _Field
    last: _Field | None = None
    deepest: _Field | None = None


def _first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    return None


def _first(value: object) -> int:
    return int(value[0]) if isinstance(value, tuple | list) else int(value)


def _is_counted(module: nn.Module) -> bool:
    return isinstance(module, _ConvNd | nn.Linear) or bool(getattr(module, "summary_counted", False))


def _counts(module: nn.Module, x: torch.Tensor | None, y: torch.Tensor | None) -> tuple[int, int]:
    """(own parameters, connections) of one row."""
    in_shape = tuple(x.shape[1:]) if x is not None else ()
    out_shape = tuple(y.shape[1:]) if y is not None else ()
    if hasattr(module, "summary_counts"):
        params, connections = module.summary_counts(in_shape, out_shape)
        return int(params), int(connections)
    params = sum(p.numel() for p in module.parameters(recurse=False))
    out = math.prod(out_shape) if y is not None else 0
    spatial = max(len(out_shape) - 1, 1)
    if isinstance(module, _ConvNd):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        if isinstance(module, _ConvTransposeNd):  # each output gathers from in/groups · k / s inputs
            per_output = per_output // math.prod(module.stride) or 1
        return params, out * (per_output + (module.bias is not None))
    if isinstance(module, nn.Linear):
        return params, out * (module.in_features + (module.bias is not None))
    if isinstance(module, _POOLS):
        k = module.kernel_size
        return params, out * (math.prod(k) if isinstance(k, tuple) else k**spatial)
    if isinstance(module, _ADAPTIVE) and x is not None:
        window = math.prod(math.ceil(i / o) for i, o in zip(in_shape[1:], out_shape[1:], strict=True))
        return params, out * window
    if isinstance(module, nn.LocalResponseNorm):
        return params, out * module.size
    return params, 0


def _layer_field(module: nn.Module, entry: _Field, x: torch.Tensor | None, y: torch.Tensor | None, full: int) -> _Field:
    """The field of a row's output, from the field of its input."""
    depth = entry.depth + _is_counted(module)
    if y is None or y.ndim < 3:  # flattened (B, F): the whole input
        return _Field(full, full, depth)
    if isinstance(module, _ADAPTIVE):
        n_in, n_out = (x.shape[2] if x is not None else y.shape[2]), y.shape[2]
        if n_out == 1:  # global pooling
            return _Field(full, full, depth)
        stride = max(n_in // n_out, 1)
        kernel = max(n_in - (n_out - 1) * stride, 1)
        return _Field(entry.rf + (kernel - 1) * entry.jump, entry.jump * stride, depth)
    if hasattr(module, "kernel_size"):
        k = _first(module.kernel_size)
        s = _first(getattr(module, "stride", None) or k)
        d = _first(getattr(module, "dilation", 1))
        if isinstance(module, _ConvTransposeNd):  # upsampling: outputs are s times denser
            jump = max(entry.jump // s, 1)
            return _Field(entry.rf + (k - 1) * d * jump, jump, depth)
        return _Field(entry.rf + (k - 1) * d * entry.jump, entry.jump * s, depth)
    return _Field(entry.rf, entry.jump, depth)


class _Tracer:
    """Follows one forward pass through pre/post hooks on every module."""

    def __init__(self, model: nn.Module, full: int) -> None:
        self.full = full
        self.known: dict[int, tuple[torch.Tensor, _Field]] = {}  # id → (tensor kept alive, field)
        self.stack: list[_Frame] = []
        self.rows: list[LayerRow] = []
        self.depth = 0
        composite = {n for n, m in model.named_modules() if hasattr(m, "summary_counts")}

        def inside_composite(name: str) -> bool:
            parts = name.split(".")
            return any(".".join(parts[:i]) in composite for i in range(0 if name else 1, len(parts)))

        self.row_names = {
            n
            for n, m in model.named_modules()
            if (n in composite or next(m.children(), None) is None) and not inside_composite(n)
        }

    def field_of(self, t: torch.Tensor | None) -> _Field:
        if t is not None and id(t) in self.known:
            return self.known[id(t)][1]
        if not self.stack:
            return _Field(1, 1, 0)
        frame = self.stack[-1]  # a tensor made by a function, not a module: the latest field here
        return frame.last or frame.entry

    def pre(self, inputs: tuple) -> None:
        self.stack.append(_Frame(self.field_of(_first_tensor(inputs))))

    def post(self, name: str, module: nn.Module, inputs: tuple, output: object) -> None:
        frame = self.stack.pop()
        x, y = _first_tensor(inputs), _first_tensor(output)
        is_row = name in self.row_names
        if is_row:
            result = _layer_field(module, frame.entry, x, y, self.full)
        elif y is not None and id(y) in self.known:
            result = self.known[id(y)][1]
        else:  # e.g. torch.cat of parallel branches: the widest, deepest of them
            result = frame.deepest or frame.entry
        if y is not None:
            self.known[id(y)] = (y, result)
        self.depth = max(self.depth, result.depth)
        if self.stack:
            parent = self.stack[-1]
            parent.last = result
            parent.deepest = result if parent.deepest is None else parent.deepest.merge(result)
        if is_row:
            params, connections = _counts(module, x, y)
            out_shape = tuple(y.shape[1:]) if y is not None else ()
            row = LayerRow(name or type(module).__name__, type(module).__name__, out_shape, params, connections,
                           result.rf, result.jump, _is_counted(module))  # fmt: skip
            self.rows.append(row)


def summarize(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> Summary:
    """Trace one forward pass of a zero batch of 1 and summarise every layer.

    Args:
        model: any `nn.Module` taking a `(B, C, H, W)` tensor (also on the meta device).
        input_shape: `(C, H, W)`; defaults to `model.input_shape`.

    Returns:
        The `Summary`; the model is left unchanged (no hooks, same train/eval modes).

    Raises:
        InputShapeError: no `input_shape` was given and the model has none, or the model rejects it.

    Example:
        >>> s = summarize(create_model("vgg16"))
        >>> s.depth, s.total_params
        (16, 138357544)
    """
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is None or len(input_shape) < 2:
        raise InputShapeError(
            f"summarize needs the input shape (C, H, W) of this {type(model).__name__}, got {input_shape!r}; "
            "pass input_shape=(C, H, W)."
        )
    if not all(isinstance(s, numbers.Integral) and s > 0 for s in input_shape):
        raise InputShapeError(f"summarize needs an input shape (C, H, W) of positive whole numbers, got "
                              f"{tuple(input_shape)!r}; pass e.g. input_shape=(3, 32, 32).")
    input_shape = tuple(int(s) for s in input_shape)
    tensors = [*model.parameters(), *model.buffers()]
    ref = next((t for t in tensors if t.is_floating_point()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None else torch.get_default_dtype()

    tracer = _Tracer(model, full=input_shape[1])
    x = torch.zeros((1, *input_shape), device=device, dtype=dtype)
    tracer.known[id(x)] = (x, _Field(1, 1, 0))  # one input pixel, no layer behind it
    try:
        with torch.no_grad(), eval_mode(model), trace_modules(model, lambda _m, inputs: tracer.pre(inputs),
                                                              tracer.post):
            model(x)
    except RuntimeError as e:  # torch's shape errors; the zoo's own check raises InputShapeError first
        reason = str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
        raise InputShapeError(f"{type(model).__name__} does not run on one input of shape {input_shape} ({reason}); "
                              "pass the input_shape=(C, H, W) the model was built for.") from e

    params = list(model.parameters())
    return Summary(
        rows=tracer.rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        depth=tracer.depth,
        input_shape=input_shape,
    )


__all__ = ["LayerRow", "Summary", "summarize"]
