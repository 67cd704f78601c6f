"""Stand-ins for instruments being written in parallel branches; `experiments/zf.py` imports them from here only.

Delete this module once they land, and import instead:

- `DeconvnetProjection`  -> `convscope.explain.deconvnet.DeconvnetProjection` (same call: `.attribute(x, unit)`);
- `top_examples`, `TopK`, `receptive_box`, `input_patch` -> `convscope.analysis.topk` (same signatures; the
  box here is receptive-field arithmetic on Sequential features, else the support of the unit's gradient);
- `occlusion_fast_vs_full` -> compare `Occlusion(..., fast=True)` with `fast=False` once `Occlusion` has the option.

The projection here is an explicit deconvnet (Zeiler & Fergus 2014, §2.1) for models whose `features` is an
`nn.Sequential` of Conv2d / ReLU / MaxPool2d / Dropout: the unit's signal (1 at the neuron, or 1 over the whole
map) is sent down through transposed convolutions (the flipped filters), rectified at every ReLU, and unpooled
with the switches recorded by the forward max pooling (accumulating where overlapping windows share a switch,
as the gradient does). `zf.py` compares it with the deconvnet-rule gradient (`explain.Deconvnet`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.analysis.evolution import channel_maxima
from convscope.errors import UserError
from convscope.explain import Occlusion, create_method
from convscope.explain.base import Unit
from convscope.hooks import conv_layers, conv_weight, frozen, get_layer, model_device

_PASS = (nn.Dropout, nn.Identity)


class DeconvnetProjection:  # stand-in until explain/deconvnet.py lands
    """Explicit deconvnet projection of a unit to pixels, (B, C, H, W); falls back to the deconvnet-rule gradient
    (numerically the same on conv/ReLU/max-pool nets) when `features` is not a plain Sequential of those."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.explicit = _sequential_path(model) is not None

    def attribute(self, x: Tensor, target: Unit) -> Tensor:
        if not self.explicit:
            return create_method("deconvnet", self.model).attribute(x, target)
        layer, channel, *pos = target
        B = len(x)
        return _project(self.model, x, layer, [channel] * B, [tuple(pos)] * B if pos else None)

    def attribute_units(self, x: Tensor, layer: str, units: list[tuple[int, int, int]]) -> Tensor:
        """Example b projects its own neuron units[b] = (channel, y, x) of `layer`: one pass for the batch."""
        if not self.explicit:
            return torch.cat([self.attribute(x[b:b + 1], (layer, *u)) for b, u in enumerate(units)])
        return _project(self.model, x, layer, [u[0] for u in units], [u[1:] for u in units])


def _sequential_path(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    feats = getattr(model, "features", None)
    if not isinstance(feats, nn.Sequential):
        return None
    mods = [(f"features.{n}", m) for n, m in feats.named_children()]
    ok = all(isinstance(m, (nn.Conv2d, nn.ReLU, nn.MaxPool2d, *_PASS)) for _, m in mods)
    return mods if ok else None


@torch.no_grad()
def _project(model: nn.Module, x: Tensor, layer: str, channels: list[int],
             positions: list[tuple[int, ...]] | None) -> Tensor:
    """Example b projects channel channels[b] of `layer`, at positions[b] (the whole map when None)."""
    path = _sequential_path(model)
    assert path is not None
    names = [n for n, _ in path]
    if layer not in names:
        raise UserError(f"The deconvnet projects units of {', '.join(names)}, not {layer!r}.")
    p = next(model.parameters())
    h = x.detach().to(p.device, p.dtype)
    trace: list[tuple[nn.Module, tuple]] = []  # what each module needs on the way down
    with frozen(model), torch.no_grad():
        for name, m in path:
            if isinstance(m, nn.MaxPool2d):
                out, switches = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
                                             return_indices=True)
                trace.append((m, (switches, h.shape)))
                h = out
            else:
                trace.append((m, (h.shape,)))
                h = m(h) if not isinstance(m, nn.ReLU) else F.relu(h)
            if name == layer:
                break
    signal = torch.zeros_like(h)  # (B, C, h, w): only the unit is kept
    b = torch.arange(len(h))
    if positions is not None:
        ys, xs = torch.tensor([p[0] for p in positions]), torch.tensor([p[1] for p in positions])
        signal[b, channels, ys, xs] = 1.0
    else:
        signal[b, channels] = 1.0
    for m, info in reversed(trace):
        if isinstance(m, nn.Conv2d):  # filter with the transposed (flipped) filters
            out_pad = [info[0][2 + i] - ((signal.shape[2 + i] - 1) * m.stride[i] - 2 * m.padding[i]
                                         + m.dilation[i] * (m.kernel_size[i] - 1) + 1) for i in range(2)]
            signal = F.conv_transpose2d(signal, m.weight, None, m.stride, m.padding, tuple(out_pad), m.groups,
                                        m.dilation)
        elif isinstance(m, nn.ReLU):  # rectify
            signal = F.relu(signal)
        elif isinstance(m, nn.MaxPool2d):  # unpool with the switches
            switches, shape = info
            flat = torch.zeros(shape[0], shape[1], shape[2] * shape[3], dtype=signal.dtype, device=signal.device)
            flat.scatter_add_(2, switches.flatten(2), signal.flatten(2))
            signal = flat.view(shape)
    return signal


@dataclass
class TopK:  # stand-in until analysis/topk.py lands
    """The k strongest activations of each channel of one layer over a dataset, one per image."""

    values: Tensor  # (C, k)
    index: Tensor  # (C, k) dataset indices
    pos: Tensor  # (C, k, 2) (y, x) of the maximum in the layer's output


def top_examples(model: nn.Module, batches: Iterable[Tensor], layers: list[str] | None = None,
                 k: int = 9) -> dict[str, TopK]:  # stand-in until analysis/topk.py lands (brute force)
    """Per channel of each layer (default: every conv layer), the k images with the largest activation;
    `batches` yields (B, C, H, W) tensors, whose images are numbered in order from 0."""
    layers = list(layers or conv_layers(model))
    best: dict[str, tuple[Tensor, Tensor, Tensor]] = {}
    offset = 0
    for xb in batches:
        maxima = channel_maxima(model, xb, layers)
        for n, (v, where) in maxima.items():
            idx = torch.arange(offset, offset + len(xb)).expand(v.shape[1], -1).T  # (B, C)
            if n in best:  # merge with the best so far, keep k
                v = torch.cat([best[n][0], v])
                idx = torch.cat([best[n][1], idx])
                where = torch.cat([best[n][2], where])
            top_v, top_i = v.topk(min(k, len(v)), dim=0)  # (k, C)
            best[n] = (top_v, idx.gather(0, top_i), where.gather(0, top_i[..., None].expand(-1, -1, 2)))
        offset += len(xb)
    return {n: TopK(values=v.T.contiguous(), index=i.T.contiguous(), pos=p.transpose(0, 1).contiguous())
            for n, (v, i, p) in best.items()}


def receptive_box(model: nn.Module, layer: str, y: int, x: int,
                  input_hw: tuple[int, int]) -> tuple[int, int, int, int]:  # stand-in until analysis/topk.py lands
    """(y0, y1, x0, x1), exclusive ends: the input pixels unit (layer, ·, y, x) depends on, cut to the image.

    For a Sequential `features` of conv/pool/elementwise layers, by receptive-field arithmetic (each layer: the
    field grows by (k − 1)·dilation·jump, the jump multiplies by the stride, the start moves back by
    padding·jump); otherwise the support of the unit's gradient over 32 random inputs (union: ReLU gating and
    pooling switches vary with the input)."""
    path = _sequential_path(model)
    if path is None or layer not in [n for n, _ in path]:
        return _box_by_gradient(model, layer, y, x, tuple(input_hw))
    start, jump, size = [0, 0], [1, 1], [1, 1]
    for name, m in path:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p, d = (_two(getattr(m, a)) for a in ("kernel_size", "stride", "padding", "dilation"))
            for i in range(2):
                start[i] -= p[i] * jump[i]
                size[i] += (k[i] - 1) * d[i] * jump[i]
                jump[i] *= s[i]
        if name == layer:
            break
    y0, x0 = start[0] + y * jump[0], start[1] + x * jump[1]
    H, W = input_hw
    return (max(y0, 0), min(y0 + size[0], H), max(x0, 0), min(x0 + size[1], W))


def _two(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


@lru_cache(maxsize=4096)
def _box_by_gradient(model: nn.Module, layer: str, y: int, x: int,
                     input_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    get_layer(model, layer)
    first = conv_weight(get_layer(model, conv_layers(model)[0]))
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(32, first.shape[1], *input_hw, generator=gen).to(model_device(model), first.dtype)
    grad = create_method("saliency", model).attribute(noise, (layer, 0, y, x))  # (32, C, H, W)
    support = grad.abs().sum((0, 1)) > 0  # (H, W)
    rows, cols = support.any(1).nonzero()[:, 0], support.any(0).nonzero()[:, 0]
    if not len(rows):
        return (0, input_hw[0], 0, input_hw[1])
    return (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


def input_patch(x: Tensor, box: tuple[int, int, int, int]) -> Tensor:  # stand-in until analysis/topk.py lands
    """The part of x (..., H, W) inside box (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = box
    return x[..., y0:y1, x0:x1]


def occlusion_fast_vs_full(model: nn.Module, x: Tensor, target: Tensor, window: int, stride: int,
                           fill: float) -> float | None:  # stand-in until the fast Occlusion lands
    """max |fast − full| / max |full| of Occlusion's maps, or None while `Occlusion` has no `fast` option."""
    if "fast" not in inspect.signature(Occlusion.__init__).parameters:
        return None
    kw = {"window": window, "stride": stride, "baseline": fill, "output": "probability"}
    fast = Occlusion(model, fast=True, **kw).attribute(x, target)  # type: ignore[call-arg]
    full = Occlusion(model, fast=False, **kw).attribute(x, target)  # type: ignore[call-arg]
    return float((fast - full).abs().max() / full.abs().max().clamp_min(1e-12))


__all__ = ["DeconvnetProjection", "TopK", "input_patch", "occlusion_fast_vs_full", "receptive_box", "top_examples"]
