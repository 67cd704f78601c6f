"""Incremental inference for occlusion (Nakandala, Kumar, Papakonstantinou, "Incremental and Approximate
Inference for Faster Occlusion-based Deep CNN Explanations", SIGMOD 2019: Krypton's exact mode).

An occluding window changes a small box of the input, and each layer changes only the box of its output that
its kernel can see from the changed box of its input. So the unoccluded activations are computed once, and
for a batch of window positions each layer recomputes only its changed box: the layer's input window is cut
from the (padded) unoccluded activation with the position's changed patch pasted in, and the layer runs on it
without padding. Every position of a layer gets a box of one size (boxes that would cross the border are
shifted inward; the few unchanged outputs they recompute come out as they were), so the patches of all
positions batch into one call. The result is the same as re-running the network on each occluded input, up
to float rounding.

Covered (followed with a forward-hook trace of the model's leaf modules, which must form a chain: each takes
the previous one's output, and the model returns the last one's):

- windowed layers: `nn.Conv2d` (zero padding, any stride, dilation, groups, "same"/"valid"), `nn.MaxPool2d`
  (ceil mode included), `nn.AvgPool2d` (without partial windows; padding only when counted);
- spatially pointwise layers: ReLU (in place or not) and the other activation modules, `nn.BatchNorm2d` in
  eval mode with running statistics, dropout (identity in eval), `nn.LocalResponseNorm`, `nn.Identity`,
  adaptive pooling that keeps the size.

Once a changed box covers the whole map, or at the first other layer (flatten, linear, adaptive pooling that
pools), the patches are pasted into full activations and the rest of the chain runs as usual. A model that is
not a chain (a residual add, `F.relu` or a reshape written in `forward`) cannot be followed: `trace_chain`
raises `NotIncremental` saying where, and `Occlusion` falls back to full re-inference.

Example:
    >>> plan = Plan(trace_chain(model, x), starts, window=(16, 16))
    >>> for positions, out in plan.outputs(fill, chunk=32): ...       # out: (len(positions)·B, classes)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.errors import UserError
from convscope.hooks import POINTWISE_MODULES, trace_modules


class NotIncremental(UserError):
    """A model or layer the incremental engine cannot follow; the message says which and why."""


# ---------------------------------------------------------------------------------------------- the chain


@dataclass
class Chain:
    """The model's leaf modules in forward order, with their outputs on the unoccluded input."""

    x: Tensor  # (B, C, H, W) the unoccluded input
    names: list[str]
    modules: list[nn.Module]
    outputs: list[Tensor]  # each leaf's output, cloned when it was made (a later in-place op cannot change it)

    def input_of(self, i: int) -> Tensor:
        return self.x if i == 0 else self.outputs[i - 1]


def trace_chain(model: nn.Module, x: Tensor, layer: str | None = None) -> Chain:
    """Run `model(x)` once and record its leaf modules as a chain, up to the output of `layer` (a unit's layer,
    whose output is then what is explained) or to the model's output.

    Raises `NotIncremental` where a leaf does not take its predecessor's output (values compared too, so an
    in-place change between two modules is caught), where `layer` is not reached by the chain or runs more than
    once, and where the model's output is not its last leaf's.
    """
    names = {m: n for n, m in model.named_modules()}
    leaves = {m for m in model.modules() if next(m.children(), None) is None}
    chain = Chain(x, [], [], [])
    last: list[object] = [x]  # the tensor object the next leaf must take
    broken: list[str] = []
    stop: list[int] = []  # the chain length when `layer` finished
    calls = [0]

    def pre(module: nn.Module, inputs: tuple) -> None:
        if broken or stop or module not in leaves:
            return
        value = chain.outputs[-1] if chain.outputs else x
        if not (len(inputs) == 1 and inputs[0] is last[0] and torch.equal(inputs[0], value)):
            prev = f"the output of {chain.names[-1]!r}" if chain.names else "the model's input"
            broken.append(f"{names[module] or type(module).__name__!r} ({type(module).__name__}) does not take "
                          f"{prev}: the forward pass computes something outside modules between them (a residual "
                          "add, F.relu, a reshape, an in-place change)")

    def post(name: str, module: nn.Module, inputs: tuple, output: object) -> None:
        if not broken and not stop and module in leaves:
            if not isinstance(output, Tensor):
                broken.append(f"{name!r} ({type(module).__name__}) returns {type(output).__name__}, not a tensor")
                return
            chain.names.append(name)
            chain.modules.append(module)
            chain.outputs.append(output.detach().clone())
            last[0] = output
        if layer is not None and name == layer:
            calls[0] += 1
            if not broken and not stop:
                if output is not last[0] or not chain.outputs:
                    broken.append(f"the output of {layer!r} is not the output of one of its layers")
                else:
                    stop.append(len(chain.names))

    with trace_modules(model, pre, post):
        out = model(x)
    if calls[0] > 1:
        raise NotIncremental(f"Layer {layer!r} runs more than once per forward pass.")
    if stop:
        return chain
    if broken:
        raise NotIncremental(broken[0] + ".")
    if layer is not None:
        raise NotIncremental(f"Layer {layer!r} is not reached by the model's chain of layers.")
    if out is not last[0] or not chain.outputs:
        raise NotIncremental("The model's output is not the output of its last layer: the forward pass computes "
                             "something after it.")
    return chain


# ---------------------------------------------------------------------------------------------- the layers


@dataclass
class Window:
    """A layer whose output at one position depends on a window of its input: run without padding on a crop."""

    run: Callable[[Tensor], Tensor]  # the layer on an unpadded input window
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]  # top, bottom, left, right
    value: float  # what the padding holds


def _two(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


_NON_SPATIAL = (nn.Flatten, nn.Linear, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _own_forward(m: nn.Module, cls: type) -> bool:
    """`m` is a `cls` that runs `cls`'s own forward and no user hooks."""
    return (isinstance(m, cls) and type(m).forward is cls.forward
            and not (m._forward_hooks or m._forward_pre_hooks))  # type: ignore[attr-defined]


def classify(m: nn.Module, inp: Tensor, out: Tensor) -> str | Window:
    """"point" for a spatially pointwise layer, a `Window` for a windowed one, "end" for a layer after which the
    maps are not spatial any more, else the reason it cannot be followed."""
    kind = type(m).__name__
    if inp.dim() != 4 or out.dim() != 4:
        return "end"
    if any(_own_forward(m, c) for c in POINTWISE_MODULES):
        return "point" if not m.training else f"{kind} is in training mode"
    if _own_forward(m, nn.BatchNorm2d):
        ok = not m.training and m.running_mean is not None
        return "point" if ok else f"{kind} uses batch statistics (training mode or no running statistics)"
    if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) and _own_forward(m, type(m)):
        return "point" if out.shape[-2:] == inp.shape[-2:] else "end"
    if _own_forward(m, nn.Conv2d):
        k, s, d = _two(m.kernel_size), _two(m.stride), _two(m.dilation)
        if m.padding_mode != "zeros":
            return f"Conv2d pads with {m.padding_mode!r}, not zeros"
        if isinstance(m.padding, str):
            total = [0, 0] if m.padding == "valid" else [d[0] * (k[0] - 1), d[1] * (k[1] - 1)]
            pad = (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
        else:
            (ph, pw) = _two(m.padding)
            pad = (ph, ph, pw, pw)
        return Window(lambda t, m=m: F.conv2d(t, m.weight, m.bias, m.stride, 0, m.dilation, m.groups),
                      k, s, d, pad, 0.0)
    if _own_forward(m, nn.MaxPool2d):
        if m.return_indices:
            return "MaxPool2d returns indices"
        k, s, d, (ph, pw) = _two(m.kernel_size), _two(m.stride or m.kernel_size), _two(m.dilation), _two(m.padding)
        return Window(lambda t, m=m, k=k, s=s, d=d: F.max_pool2d(t, k, s, 0, d), k, s, d, (ph, ph, pw, pw),
                      float("-inf"))
    if _own_forward(m, nn.AvgPool2d):
        k, s, (ph, pw) = _two(m.kernel_size), _two(m.stride or m.kernel_size), _two(m.padding)
        spans = [(o - 1) * st + kk for o, st, kk in zip(out.shape[-2:], s, k, strict=True)]
        if any(sp > n + 2 * p for sp, n, p in zip(spans, inp.shape[-2:], (ph, pw), strict=True)):
            return "AvgPool2d has partial windows (ceil mode)"
        if (ph or pw) and not m.count_include_pad:
            return "AvgPool2d leaves its padding out of the count"
        return Window(lambda t, m=m, k=k, s=s: F.avg_pool2d(t, k, s, 0, False, True, m.divisor_override),
                      k, s, (1, 1), (ph, ph, pw, pw), 0.0)
    if isinstance(m, _NON_SPATIAL):
        return "end"
    return f"{kind} is not a layer the engine knows"


def macs(m: nn.Module, out: Tensor) -> int:
    """Multiply-adds of a conv or linear layer producing `out` (0 for other layers)."""
    if isinstance(m, nn.Conv2d):
        return out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    return 0


# ---------------------------------------------------------------------------------------------- the plan


@dataclass
class Step:
    """One layer on patches; for a windowed layer, the output rows and columns each position changes."""

    index: int
    layer: str | Window
    lo: Tensor | None = None  # (P, 2) first changed output row and column per position
    size: Tensor | None = None  # (P, 2) how many
    out: tuple[int, int] = (0, 0)  # the output's height and width
    base: Tensor | None = None  # (B, Hp, Wp, C) the unoccluded input, padded, channels last


def _axis(lo: Tensor, hi: Tensor, out: int, k: int, s: int, d: int, before: int) -> tuple[Tensor, Tensor]:
    """The output range [lo, hi] a layer changes along one axis, from the changed input range [lo, hi]."""
    first = torch.div(lo + before - d * (k - 1) + s - 1, s, rounding_mode="floor").clamp(0, out - 1)  # ceil
    last = torch.div(hi + before, s, rounding_mode="floor").clamp(max=out - 1)
    return first, torch.maximum(last, first)


def spread(chain: Chain, lo: Tensor, hi: Tensor) -> Iterator[tuple[int, Window | str | None, Tensor, Tensor]]:
    """Follow the changed boxes, first input rows and columns `lo` (P, 2) to last `hi`, layer by layer: yields
    (leaf index, its kind, its output's changed box lo, hi) with kind a `Window`, None for a pointwise layer
    (box unchanged), or, last, "end" where the maps stop being spatial or the reason the layer cannot be
    followed."""
    for i, m in enumerate(chain.modules):
        inp, out = chain.input_of(i), chain.outputs[i]
        kind = classify(m, inp, out)
        if kind == "point" and out.shape != inp.shape:
            kind = "it changes the shape of its input"
        if isinstance(kind, str) and kind != "point":
            yield i, kind, lo, hi
            return
        if isinstance(kind, Window):
            (oh, ow), (pt, _, pl, _) = out.shape[-2:], kind.pad
            ly, hy = _axis(lo[:, 0], hi[:, 0], oh, kind.kernel[0], kind.stride[0], kind.dilation[0], pt)
            lx, hx = _axis(lo[:, 1], hi[:, 1], ow, kind.kernel[1], kind.stride[1], kind.dilation[1], pl)
            lo, hi = torch.stack([ly, lx], 1), torch.stack([hy, hx], 1)
        yield i, kind if isinstance(kind, Window) else None, lo, hi


def input_boxes(chain: Chain, starts: Tensor, window: tuple[int, int]) -> Tensor:
    """(P, 2) each window's corner shifted inside the image (a window past the border covers its last rows)."""
    H, W = chain.x.shape[-2:]
    starts = starts.cpu()
    return torch.stack([starts[:, 0].clamp(max=H - window[0]), starts[:, 1].clamp(max=W - window[1])], 1)


def least_macs(chain: Chain, starts: Tensor, window: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """The fewest multiply-adds any exact occlusion must do, per conv or linear layer, over all windows at
    `starts` (P, 2): (full re-inference, least). A windowed layer must recompute every output its changed input
    box reaches, each position alone (no box shared with other positions); a linear layer right after the last
    spatial map (through pointwise layers and a flatten) needs only the columns of its changed inputs
    (y' = y + W[:, changed] · Δ); every later layer runs whole. The engine's plan does more: its boxes are the
    largest of a batch's positions, and it runs whole from the first layer one position changes entirely."""
    at = input_boxes(chain, starts, window)
    P, counts, share = len(starts), {}, torch.ones(len(starts))
    end = len(chain.modules)
    for i, kind, lo, hi in spread(chain, at, at + torch.tensor(window) - 1):
        if isinstance(kind, str):
            end = i
            break
        size, area = hi - lo + 1, chain.outputs[i].shape[-2] * chain.outputs[i].shape[-1]
        share = (size[:, 0] * size[:, 1]).double() / area
        full = macs(chain.modules[i], chain.outputs[i]) * P
        if full:
            counts[chain.names[i]] = (full, round(float(share.sum()) / P * full))
    for i in range(end, len(chain.modules)):
        m, full = chain.modules[i], macs(chain.modules[i], chain.outputs[i]) * P
        if not full:
            continue
        first = isinstance(m, nn.Linear) and all(
            isinstance(chain.modules[j], nn.Flatten | nn.Dropout) for j in range(end, i))
        counts[chain.names[i]] = (full, round(float(share.sum()) / P * full) if first else full)
    return counts


class Plan:
    """Which layers run on patches for the windows starting at `starts` (P, 2) of size `window`, and where the
    patches are pasted into full activations (`split`: the first leaf that runs on full maps).

    Positions are sorted by the sizes of their changed boxes, deepest layer first, and run in batches of
    neighbours in that order (`batches`): a batch's box is the largest of its positions', so sorting keeps what
    is recomputed beyond the change small, while batches stay as large as asked.
    `reason` says why the patches stopped before the maps became non-spatial or fully changed (an unknown
    layer), or is None. `incremental` is whether any windowed layer runs on patches.
    """

    def __init__(self, chain: Chain, starts: Tensor, window: tuple[int, int]) -> None:
        self.chain, self.window, self.starts = chain, window, starts.cpu()
        at = input_boxes(chain, starts, window)
        self.input_at = at  # (P, 2) the input box: the window, shifted inside the image
        self.steps: list[Step] = []
        self.reason: str | None = None
        self.split = 0
        for i, kind, lo, hi in spread(chain, at, at + torch.tensor(window) - 1):
            if isinstance(kind, str):
                if kind != "end":
                    self.reason = f"{chain.names[i]!r}: {kind}"
                break
            if kind is None:
                self.steps.append(Step(i, "point"))
                self.split = i + 1
                continue
            inp, (oh, ow), (pt, pb, pl, pr) = chain.input_of(i), chain.outputs[i].shape[-2:], kind.pad
            if (hi - lo + 1).max(0).values.tolist() == [oh, ow]:
                break  # the change covers the whole map for some position: run this layer on full maps
            h, w = inp.shape[-2:]
            # the padded input reaches every window, ceil-mode pooling's last one included
            hp = max(pt + h + pb, (oh - 1) * kind.stride[0] + kind.dilation[0] * (kind.kernel[0] - 1) + 1)
            wp = max(pl + w + pr, (ow - 1) * kind.stride[1] + kind.dilation[1] * (kind.kernel[1] - 1) + 1)
            base = inp.new_full((inp.shape[0], hp, wp, inp.shape[1]), kind.value)
            base[:, pt:pt + h, pl:pl + w] = inp.permute(0, 2, 3, 1)  # (B, Hp, Wp, C)
            self.steps.append(Step(i, kind, lo, hi - lo + 1, (oh, ow), base))
            self.split = i + 1
        self.incremental = any(isinstance(s.layer, Window) for s in self.steps)
        sized = [s.size.tolist() for s in self.steps[::-1] if s.size is not None]
        self.order = sorted(range(len(starts)), key=lambda p: [size[p] for size in sized])

    def batches(self, chunk: int) -> Iterator[tuple[list[int], list[tuple[tuple[int, int], Tensor]]]]:
        """Runs of at most `chunk` positions, each with its box size and each position's box corner at every
        windowed layer (the corners shifted inward where the batch's box would cross the border)."""
        for p0 in range(0, len(self.order), chunk):
            ids = self.order[p0:p0 + chunk]
            boxes = []
            for step in self.steps:
                if step.lo is not None and step.size is not None:
                    size = step.size[ids].max(0).values
                    at = torch.minimum(step.lo[ids], torch.tensor(step.out) - size)
                    boxes.append((tuple(size.tolist()), at))
            yield ids, boxes

    def macs(self, chunk: int) -> dict[str, tuple[int, int]]:
        """Per conv or linear layer: multiply-adds of full re-inference and of this plan run in batches of
        `chunk` positions, over all positions."""
        P, counts = len(self.starts), {}
        windowed = [s.index for s in self.steps if s.size is not None]
        done = dict.fromkeys(windowed, 0)  # output pixels computed per windowed layer
        for ids, boxes in self.batches(chunk):
            for i, ((h, w), _) in zip(windowed, boxes, strict=True):
                done[i] += len(ids) * h * w
        for i, (name, m) in enumerate(zip(self.chain.names, self.chain.modules, strict=True)):
            out = self.chain.outputs[i]
            full = macs(m, out) * P
            if full:
                area = out.shape[-2] * out.shape[-1]
                counts[name] = (full, full * done[i] // (P * area) if i in done else full)
        return counts

    # ------------------------------------------------------------------------------------------ running

    def outputs(self, fill: Tensor, chunk: int) -> Iterator[tuple[list[int], Tensor]]:
        """For batches of at most `chunk` positions (of one group): the positions and the explained output for
        all of them, (positions·B, ...), position-major. `fill` (B, C, H, W) is what the window puts in."""
        chain = self.chain
        x, fill = chain.x.permute(0, 2, 3, 1), fill.permute(0, 2, 3, 1)  # (B, H, W, C) views
        for ids, boxes in self.batches(chunk):
            patch, at, k = self._input_patch(x, fill, ids), self.input_at[ids], 0
            for step in self.steps:
                if step.layer == "point":
                    patch = chain.modules[step.index](patch)
                    continue
                box, corners = boxes[k]
                patch = step.layer.run(self._crop(step, patch, at, box, corners))  # type: ignore[union-attr]
                at, k = corners, k + 1
            out = self._paste(chain.input_of(self.split), patch, at)
            for m in chain.modules[self.split:]:
                out = m(out)
            yield ids, out

    def _input_patch(self, x: Tensor, fill: Tensor, ids: list[int]) -> Tensor:
        """(N, C, wh, ww) channels last: the input box of each position with its window filled in."""
        B, H, W, C = x.shape
        (wh, ww), at, starts = self.window, self.input_at[ids], self.starts[ids]
        rows = _grid(at, (wh, ww), B, (H, W)).to(x.device)  # (P, B, wh, ww) pixel indices
        i, j = torch.arange(wh), torch.arange(ww)
        inside = ((i >= (starts[:, 0] - at[:, 0])[:, None])[:, :, None]
                  & (j >= (starts[:, 1] - at[:, 1])[:, None])[:, None, :]).to(x.device)  # (P, wh, ww) occluded
        src = torch.where(inside[:, None, :, :, None], fill.reshape(-1, C)[rows], x.reshape(-1, C)[rows])
        return src.view(-1, wh, ww, C).permute(0, 3, 1, 2)  # (P, B, wh, ww, C) -> (N, C, wh, ww)

    def _crop(self, step: Step, patch: Tensor, at: Tensor, box: tuple[int, int], corners: Tensor) -> Tensor:
        """(N, C, h, w) channels last: each position's input window, its changed patch pasted into the padded
        unoccluded input. Two batched copies (a gather and a scatter of pixel rows), not one per position."""
        layer, base = step.layer, step.base
        assert isinstance(layer, Window) and base is not None
        B, hp, wp, C = base.shape
        (sh, sw), (kh, kw), (dh, dw), pt, pl = layer.stride, layer.kernel, layer.dilation, layer.pad[0], layer.pad[2]
        (oh, ow), (bh, bw), P = box, patch.shape[-2:], len(at)
        wh, ww = (oh - 1) * sh + dh * (kh - 1) + 1, (ow - 1) * sw + dw * (kw - 1) + 1
        start = corners * torch.tensor([sh, sw])  # (P, 2) each window's corner in the padded input
        win = base.view(-1, C).index_select(0, _grid(start, (wh, ww), B, (hp, wp)).flatten().to(base.device))
        # where each window pixel lies in the patch (whose corner is `at` + padding)
        pi = torch.arange(wh)[None] + (start[:, 0] - at[:, 0] - pt)[:, None]  # (P, wh)
        pj = torch.arange(ww)[None] + (start[:, 1] - at[:, 1] - pl)[:, None]  # (P, ww)
        inside = ((pi >= 0) & (pi < bh))[:, :, None] & ((pj >= 0) & (pj < bw))[:, None, :]  # (P, wh, ww)
        n = torch.arange(P * B).view(P, B, 1, 1) * (bh * bw)
        src = n + (pi * bw)[:, None, :, None] + pj[:, None, None, :]  # (P, B, wh, ww) patch pixel
        dst = inside[:, None].expand(P, B, wh, ww).flatten().nonzero().squeeze(1)
        rows = patch.permute(0, 2, 3, 1).reshape(-1, C)  # (N·bh·bw, C), a view when channels last
        win.index_copy_(0, dst.to(base.device), rows.index_select(0, src.flatten()[dst].to(base.device)))
        return win.view(P * B, wh, ww, C).permute(0, 3, 1, 2)

    def _paste(self, base: Tensor, patch: Tensor, at: Tensor) -> Tensor:
        """(N, C, H, W): the unoccluded activation `base` (B, C, H, W) once per position, its patch pasted in."""
        B, C, H, W = base.shape
        P = len(at)
        full = base.permute(0, 2, 3, 1).reshape(-1, C).repeat(P, 1)  # (P·B·H·W, C)
        where = _grid(at, patch.shape[-2:], B, (H, W)) + torch.arange(P).view(-1, 1, 1, 1) * (B * H * W)
        full.index_copy_(0, where.flatten().to(base.device), patch.permute(0, 2, 3, 1).reshape(-1, C))
        return full.view(P * B, H, W, C).permute(0, 3, 1, 2)


def _grid(at: Tensor, box: tuple[int, int], batch: int, size: tuple[int, int]) -> Tensor:
    """(P, B, h, w) row indices into a (B·H·W, C) table of pixels, of the box of size `box` at `at` (P, 2)."""
    H, W = size
    i = torch.arange(box[0])[None] + at[:, :1]  # (P, h)
    j = torch.arange(box[1])[None] + at[:, 1:]  # (P, w)
    b = torch.arange(batch).view(1, batch, 1, 1) * (H * W)
    return b + (i * W)[:, None, :, None] + j[:, None, None, :]


__all__ = ["Chain", "NotIncremental", "Plan", "Step", "Window", "classify", "input_boxes", "least_macs", "macs",
           "spread", "trace_chain"]
