"""The top-k dataset examples of every channel, in one streaming pass, and the input patch each one saw.

Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, Fig. 2
(docs/REFERENCE.md §5) show, for each feature map, the 9 images of the validation set on which it fires
most, each beside the image patch its strongest unit sees. `top_examples` finds them for every channel of
every layer at once, in one pass over the data:

- an image counts once per channel, by the spatial maximum of its map (and where that maximum is);
- the scan holds k candidates per channel, never the dataset: each batch's candidates are merged into the
  running top k, so memory does not grow with the data;
- the order is total (larger value first, then smaller dataset index), so the result does not depend on
  the batch size, and `merge_topk` of the top k of two shards is the top k of their union, exactly. That is
  how a `torch.distributed` scan ends: each rank scans its shard, giving the *global* dataset index of each
  of its examples (`indices`, e.g. `list(DistributedSampler(...))`), and `gather_topk` merges every rank's.
  `top_examples(..., distributed=True)` does all of it on a dataset tensor every rank holds: each rank scans
  the batches `shards.rank_batches` deals it, and every rank gets the one-process result.

`receptive_box` gives the input rectangle a unit sees (its receptive field, clipped to the image), and
`input_patch` cuts it out.

Example:
    >>> tops = top_examples(model, loader, k=9)          # {"features.conv1": TopK, ...}
    >>> t = tops["features.conv2"]; c, j = 5, 0
    >>> box = receptive_box(model, "features.conv2", *t.pos[c, j].tolist(), input_hw=(28, 28))
    >>> patch = input_patch(dataset[t.index[c, j]][0], box)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from convscope.errors import InputShapeError, UserError
from convscope.hooks import (
    NONLINEAR_FUNCTIONS,
    POINTWISE_MODULES,
    LeafTrace,
    conv_layers,
    frozen,
    get_layer,
    model_device,
    model_dtype,
    record,
    trace_modules,
)
from convscope.shards import rank_batches

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), rows y0..y1-1 and columns x0..x1-1


@dataclass
class TopK:
    """The top examples of each channel of one layer, best first.

    Attributes:
        values: `(C, n)` the spatial maximum of each example's map.
        index: `(C, n)` int64 dataset indices.
        pos: `(C, n, 2)` int64 (y, x) of that maximum ((0, 0) for a fully connected layer).
        k: how many are kept; `n = min(k, distinct examples seen)`.
    """

    values: Tensor
    index: Tensor
    pos: Tensor
    k: int

    def cpu(self) -> TopK:
        return TopK(self.values.cpu(), self.index.cpu(), self.pos.cpu(), self.k)


def _best(values: Tensor, index: Tensor, pos: Tensor, k: int) -> TopK:
    """The top k of each row of candidates `(C, M)`, by value then smaller index, each index once."""
    # Two stable sorts give the total order: by index, then by value (descending) keeping index order in ties.
    by_index = index.argsort(dim=1, stable=True)
    order = by_index.gather(1, values.gather(1, by_index).argsort(dim=1, descending=True, stable=True))
    values, index = values.gather(1, order), index.gather(1, order)
    pos = pos.gather(1, order[..., None].expand(-1, -1, 2))
    # An index seen twice (overlapping shards, a padded DistributedSampler) keeps its first, best, place.
    grouped, where = index.sort(dim=1, stable=True)
    repeat = torch.zeros_like(index, dtype=torch.bool)
    repeat.scatter_(1, where[:, 1:], grouped[:, 1:] == grouped[:, :-1])
    if repeat.any():
        keep = (~repeat).sum(1)
        if not (keep == keep[0]).all():
            raise UserError("The channels of one layer saw different examples: merge TopKs of the same layer.")
        first = repeat.to(torch.int8).argsort(dim=1, stable=True)[:, : int(keep[0])]  # (C, distinct)
        values, index = values.gather(1, first), index.gather(1, first)
        pos = pos.gather(1, first[..., None].expand(-1, -1, 2))
    return TopK(values[:, :k], index[:, :k], pos[:, :k], k)


def merge_topk(a: TopK, b: TopK) -> TopK:
    """The top k of the union of the examples behind `a` and `b` (exact: same order, ties by smaller index)."""
    if a.k != b.k or a.values.shape[0] != b.values.shape[0]:
        raise UserError(f"Cannot merge a top {a.k} of {a.values.shape[0]} channels with a top {b.k} of "
                        f"{b.values.shape[0]}: merge the same layer scanned with the same k.")
    return _best(torch.cat((a.values, b.values), 1), torch.cat((a.index, b.index), 1),
                 torch.cat((a.pos, b.pos), 1), a.k)


def gather_topk(t: TopK) -> TopK:
    """Every rank's `t` merged, on every rank, when `torch.distributed` is initialised; `t` itself otherwise.

    Each rank's indices must be global dataset indices. A TopK is small (C·k), so it travels as one object.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, t.cpu())
    merged = parts[0]
    for part in parts[1:]:
        merged = merge_topk(merged, part)
    return merged


class TopKScan:
    """The running top k of every channel of some layers, updated one batch of activations at a time.

    Holds k candidates per channel, whatever the number of batches: `state[layer]` is a `TopK`.
    """

    def __init__(self, k: int) -> None:
        if k < 1:
            raise UserError(f"k must be at least 1, got {k}.")
        self.k = k
        self.state: dict[str, TopK] = {}

    def update(self, acts: dict[str, Tensor], index: Tensor) -> None:
        """Merge one batch: `acts[layer]` is `(B, C, H, W)` or `(B, C)`, `index` the `(B,)` dataset indices."""
        for layer, a in acts.items():
            if a.dim() not in (2, 4):
                raise UserError(f"Layer {layer!r} puts out {tuple(a.shape)}, neither (B, C, H, W) nor (B, C): "
                                "choose conv, pool or fully connected layers.")
            flat = a.flatten(2) if a.dim() == 4 else a[..., None]  # (B, C, H·W)
            best, at = flat.max(2)  # (B, C): each example's spatial maximum and where (its first place)
            width = a.shape[3] if a.dim() == 4 else 1
            pos = torch.stack((at // width, at % width), -1).transpose(0, 1)  # (C, B, 2)
            idx = index.to(a.device).expand(a.shape[1], -1)  # (C, B)
            batch = _best(best.T.contiguous(), idx, pos, self.k)
            self.state[layer] = batch if layer not in self.state else merge_topk(self.state[layer], batch)


def _batches(batches: Tensor | Iterable[Any], batch_size: int) -> Iterable[Tensor]:
    """The input tensors of `batches`: slices of an (N, C, H, W) tensor, or each item's x (alone or in a tuple)."""
    if isinstance(batches, Tensor):
        if batches.dim() != 4:
            raise InputShapeError(f"top_examples takes an (N, C, H, W) tensor or batches of them, not a tensor "
                                  f"of shape {tuple(batches.shape)}.")
        yield from batches.split(batch_size)
        return
    for item in batches:
        x = item[0] if isinstance(item, tuple | list) else item
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise InputShapeError("top_examples takes batches of (B, C, H, W) tensors or (x, y) pairs; got "
                                  f"{type(item).__name__} {tuple(x.shape) if isinstance(x, Tensor) else ''}.")
        yield x


def top_examples(model: nn.Module, batches: Tensor | Iterable[Any], layers: list[str] | None = None, k: int = 9,
                 progress: Callable[[int], None] | None = None, *, indices: Sequence[int] | Tensor | None = None,
                 batch_size: int = 256, distributed: bool = False, allow_empty: bool = False) -> dict[str, TopK]:
    """The k examples on which each channel of each layer fires most, in one pass over `batches`.

    Args:
        model: any `nn.Module`; it runs in eval mode without gradients and is left as found.
        batches: an iterable of `(B, C, H, W)` tensors or `(x, y, ...)` tuples (a DataLoader), or one
            `(N, C, H, W)` tensor, cut into `batch_size` pieces.
        layers: dotted names (default: the conv layers, `hooks.conv_layers`).
        k: examples per channel.
        progress: called with the number of examples scanned after each batch.
        indices: the dataset index of each example in scan order (default 0, 1, 2, ...): on a
            `torch.distributed` rank, its sampler's indices, so `gather_topk` merges global indices.
        distributed: `batches` is the whole `(N, C, H, W)` dataset on every rank of the process group; each
            scans its share of the batches and all get the merged result (one process: the plain scan).

    Returns:
        `{layer: TopK}` on the CPU, best first.

    Example:
        >>> top_examples(model, x_test, k=9)["features.conv2"].index[5]    # the 9 images of channel 5
    """
    layers = list(layers) if layers is not None else conv_layers(model)
    if not layers:
        raise UserError("The model has no conv layers: name the layers to scan with layers=[...].")
    for name in layers:
        get_layer(model, name)  # an unknown name fails here, with suggestions
    if distributed:
        if not isinstance(batches, Tensor) or indices is not None:
            raise UserError("top_examples(distributed=True) shares out one (N, C, H, W) tensor that every rank holds "
                            "whole: pass that tensor, without indices.")
        mine = rank_batches(len(batches), batch_size)
        # A rank left without a batch scans none: an empty batch still gives each layer's channel count.
        parts = [batches[i] for i in mine] or [batches[:0]]
        tops = top_examples(model, parts, layers, k, progress, indices=torch.cat(mine) if mine else [],
                            batch_size=batch_size, allow_empty=True)
        return {name: gather_topk(t) for name, t in tops.items()}
    given = torch.as_tensor(indices, dtype=torch.long).flatten() if indices is not None else None
    device, dtype = model_device(model), model_dtype(model)
    scan, seen = TopKScan(k), 0
    with frozen(model), torch.no_grad(), record(model, layers) as acts:
        for x in _batches(batches, batch_size):
            n = len(x)
            if given is not None and seen + n > len(given):
                raise UserError(f"indices gives {len(given)} dataset indices and the batches hold more examples: "
                                "give one index per example.")
            index = given[seen:seen + n] if given is not None else torch.arange(seen, seen + n)
            model(x.to(device, dtype if x.is_floating_point() else x.dtype))
            scan.update(acts, index)
            seen += n
            if progress is not None:
                progress(seen)
    if seen == 0 and not allow_empty:
        raise UserError("top_examples got no examples: pass a non-empty dataset.")
    if given is not None and seen != len(given):
        raise UserError(f"indices gives {len(given)} dataset indices for {seen} examples: give one index per example.")
    return {name: scan.state[name].cpu() for name in layers}


# ------------------------------------------------------------------------------------ receptive fields


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, tuple | list) else (int(v), int(v))


def _reads(module: nn.Module, first: int, last: int, axis: int, n_in: int, n_out: int) -> list[int]:
    """The input positions that output positions first..last of a conv or pool read along `axis` (padding left
    out: a dilated kernel's taps in the padding do not count, nor do the gaps between its taps)."""
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):  # PyTorch's adaptive windows
        return list(range((first * n_in) // n_out, math.ceil((last + 1) * n_in / n_out)))
    k = _pair(module.kernel_size)[axis]
    s = _pair(getattr(module, "stride", None) or module.kernel_size)[axis]
    d = _pair(getattr(module, "dilation", 1))[axis]
    p = getattr(module, "padding", 0)
    if p == "valid":
        p = 0
    elif p == "same":
        p = d * (k - 1) // 2  # PyTorch puts the odd extra pixel after
    p = _pair(p)[axis]
    return [t for o in range(first, last + 1) for j in range(k) if 0 <= (t := o * s - p + d * j) < n_in]


def receptive_box(model: nn.Module, layer: str, y: int, x: int, input_hw: tuple[int, int]) -> Box:
    """The input rectangle `(y0, y1, x0, x1)` (half-open) that unit (y, x) of `layer` sees, clipped to the image.

    Where the layers below `layer` form a chain of convs, pools and pointwise modules, walks down it, widening
    the window at each conv and pool by its kernel, stride, dilation and padding and clipping it to that
    layer's input at every step (so padding and the rows a pooling drops are exact). Any other graph below
    `layer` (a residual add, `F.relu`, a transposed conv, an upsampling, a GroupNorm, which reads the whole
    map) is probed instead (`_reach`): the box of the pixels with a path to the unit, found by autograd. A
    fully connected layer sees the whole image; a unit that reads only padding sees nothing (an empty box).
    """
    return receptive_boxes(model, layer, [(y, x)], input_hw)[0]


def receptive_boxes(model: nn.Module, layer: str, positions: Sequence[tuple[int, int]],
                    input_hw: tuple[int, int]) -> list[Box]:
    """`receptive_box` of units `positions` [(y, x), ...] of `layer`, with one forward pass for all."""
    get_layer(model, layer)
    channels = (getattr(model, "input_shape", None) or (None,))[0] or next(
        (get_layer(model, n).in_channels for n in conv_layers(model) if hasattr(get_layer(model, n), "in_channels")),
        None)
    if channels is None:
        raise UserError("receptive_box cannot tell the model's input channels: give the model an input_shape.")
    h, w = input_hw
    trace = LeafTrace(model, layer)
    image = torch.zeros(1, channels, h, w, device=model_device(model), dtype=model_dtype(model))
    with frozen(model), torch.no_grad(), trace_modules(model, trace.pre, trace.post):
        model(image)
    top = trace.top_of(layer, "receptive_box")
    out = trace.calls[top].output
    if out.dim() != 4:
        return [(0, h, 0, w)] * len(positions)
    for y, x in positions:
        if not (0 <= y < out.shape[2] and 0 <= x < out.shape[3]):
            raise UserError(f"Position ({y}, {x}) is outside layer {layer!r}'s {out.shape[2]}×{out.shape[3]} maps.")
    calls = trace.calls[: top + 1]
    walkable = trace.chain_break(image, top) is None and all(_walks(c.module) for c in calls)
    if not walkable:
        return _reach(model, layer, positions, (channels, h, w))
    return [_walk_box(calls, y, x) for y, x in positions]


def _walks(m: nn.Module) -> bool:
    """Whether the chain walk knows what `m` reads: a conv or pooling window, or each position alone."""
    windowed = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    return isinstance(m, windowed + POINTWISE_MODULES + (nn.modules.batchnorm._BatchNorm,))


def _walk_box(calls: list, y: int, x: int) -> Box:
    """The box of unit (y, x) of the last of `calls` (a chain of conv, pool and size-keeping layers)."""
    box = [[y, y], [x, x]]  # inclusive, in the current layer's output
    for call in reversed(calls):
        module, x_in, y_out = call.module, call.inputs[0], call.output
        if hasattr(module, "kernel_size") or isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            for axis in (0, 1):
                reads = _reads(module, *box[axis], axis, x_in.shape[2 + axis], y_out.shape[2 + axis])
                if not reads:
                    return 0, 0, 0, 0
                box[axis] = [min(reads), max(reads)]
    return box[0][0], box[0][1] + 1, box[1][0], box[1][1] + 1


_PASS_THROUGH = (NONLINEAR_FUNCTIONS - {F.glu}) | {F.batch_norm, F.dropout, F.dropout2d}  # glu halves channels
_MAX_TO_AVG = {F.max_pool1d: F.avg_pool1d, F.max_pool2d: F.avg_pool2d, F.max_pool3d: F.avg_pool3d}
_ADAPTIVE = {F.adaptive_max_pool1d: F.adaptive_avg_pool1d, F.adaptive_max_pool2d: F.adaptive_avg_pool2d,
             F.adaptive_max_pool3d: F.adaptive_avg_pool3d}
_CONV = {F.conv1d, F.conv2d, F.conv3d}
_CONV_T = {F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d}
_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_T_ARGS = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")


def _named(names: tuple[str, ...], args: tuple, kwargs: dict) -> dict:
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _even(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Positive weights of `shape` that average their inputs (1 / fan-in each)."""
    return torch.full(shape, 1.0 / max(1, math.prod(shape[1:])), dtype=x.dtype, device=x.device)


class _ReachMode(TorchFunctionMode):
    """The model's wiring with every weight positive: convs and linear layers averaging their inputs, no bias,
    pointwise nonlinearities, dropout and BatchNorm the identity, max pooling as average pooling over the same
    windows. The network is then linear with positive coefficients along every path, so the gradient of a unit
    is positive exactly on the pixels that have a path to it, and zero elsewhere. Nothing of the model changes.

    With `narrow`, every conv and linear layer has one output channel whatever the model's (weights made for
    the input each call gets): the spatial paths are the same and the probe costs a channel's worth. A
    forward pass that needs the model's channel counts (a reshape to a fixed size, LayerNorm) fails narrow,
    and the probe runs again wide, with the model's own weight shapes."""

    def __init__(self, narrow: bool) -> None:
        super().__init__()
        self.narrow = narrow

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _PASS_THROUGH:
            return args[0] if args else kwargs["input"]
        if func in _CONV or func in _CONV_T:
            transposed = func in _CONV_T
            a = _named(_CONV_T_ARGS if transposed else _CONV_ARGS, args, kwargs)
            x, w = a.pop("input"), a.pop("weight")
            a.pop("bias", None)
            if self.narrow:
                shape = (x.shape[1], 1, *w.shape[2:]) if transposed else (1, x.shape[1], *w.shape[2:])
                a["groups"] = 1
            else:
                shape = tuple(w.shape)
            return func(x, _even(x, (shape[1], shape[0], *shape[2:])).transpose(0, 1) if transposed
                        else _even(x, shape), None, **a)
        if func is F.linear:
            x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            return F.linear(x, _even(x, (1, x.shape[-1]) if self.narrow else tuple(w.shape)))
        if func in _MAX_TO_AVG:
            a = _named(_POOL_ARGS, args, kwargs)
            d = a.get("dilation", 1)
            if not a.get("return_indices") and (d == 1 or (isinstance(d, tuple | list) and set(d) == {1})):
                return _MAX_TO_AVG[func](a["input"], a["kernel_size"], a.get("stride"), a.get("padding", 0),
                                         a.get("ceil_mode", False), True)
            if func is F.max_pool2d and not a.get("return_indices") and not a.get("ceil_mode"):
                x, k = a["input"], a["kernel_size"]  # dilated: a depthwise conv over the same taps
                k = (k, k) if isinstance(k, int) else tuple(k)
                taps = torch.full((x.shape[1], 1, *k), 1.0 / (k[0] * k[1]), dtype=x.dtype, device=x.device)
                return F.conv2d(x, taps, None, a.get("stride") or k, a.get("padding", 0), d, x.shape[1])
        if func in _ADAPTIVE and not kwargs.get("return_indices") and not (len(args) > 2 and args[2]):
            return _ADAPTIVE[func](args[0], args[1] if len(args) > 1 else kwargs["output_size"])
        return func(*args, **kwargs)


class _Reached(Exception):
    """Raised by the probe's hook once the layer has run: the rest of the forward pass is not needed."""


def _reach(model: nn.Module, layer: str, positions: Sequence[tuple[int, int]], shape: tuple[int, int, int],
           chunk: int = 256) -> list[Box]:
    """The boxes of units `positions` of `layer` by autograd through `_ReachMode`: example p of a batch of
    positive images seeds its own unit, so one backward pass gives every position's pixels at once; the forward
    pass stops at the layer."""
    module = get_layer(model, layer)
    boxes: dict[tuple[int, int], Box] = {}
    wanted = sorted(set(positions))
    narrow = True
    for i in range(0, len(wanted), chunk):
        part = wanted[i:i + chunk]
        while True:
            x = torch.ones(len(part), *shape, device=model_device(model), dtype=model_dtype(model),
                           requires_grad=True)
            seen: list[Tensor] = []

            def keep(_m: nn.Module, _i: tuple, out: Tensor, seen: list[Tensor] = seen) -> None:
                seen.append(out.clone())  # a copy, before any in-place op of the model changes the output
                raise _Reached

            handle = module.register_forward_hook(keep)
            try:
                with frozen(model), _ReachMode(narrow):
                    model(x)
            except _Reached:
                pass
            except Exception:  # noqa: BLE001 - narrow failed on something that needs the channel counts
                if not narrow:
                    raise
                narrow = False  # the forward pass needs the model's channel counts
                continue
            finally:
                handle.remove()
            break
        seed = torch.zeros_like(seen[0])
        ys, xs = torch.tensor([p[0] for p in part]), torch.tensor([p[1] for p in part])
        seed[torch.arange(len(part)), 0, ys, xs] = 1.0
        (grad,) = torch.autograd.grad(seen[0], x, seed)
        reached = grad.detach().abs().amax(1) > 0  # (P, H, W)
        for p, pos in enumerate(part):
            rows, cols = reached[p].any(1).nonzero().flatten(), reached[p].any(0).nonzero().flatten()
            boxes[pos] = ((int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1) if len(rows)
                          else (0, 0, 0, 0))
    return [boxes[tuple(p)] for p in positions]


def input_patch(x: Tensor, box: Box) -> Tensor:
    """The part of `x` (`(..., H, W)`) inside `box`."""
    y0, y1, x0, x1 = box
    return x[..., y0:y1, x0:x1]


__all__ = ["Box", "TopK", "TopKScan", "gather_topk", "input_patch", "merge_topk", "receptive_box", "receptive_boxes",
           "top_examples"]
