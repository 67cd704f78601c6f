"""Occlusion (Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, §4.2).

Slide a window of `baseline` values (grey, zero, or an image) over the input; at each position the drop
of the explained score, s(x) − s(x with the window occluded), is credited to every pixel under the
window, and each pixel's attribution is the mean over the windows that cover it (Captum's definition,
so the maps agree). Windows start every `stride` pixels and the last row and column of windows may be
cut off at the border, so every pixel is covered. The window spans all channels. `output="probability"`
explains the softmax probability of the target class instead of its logit.

Where the model's layers allow (a chain of convolutions, pooling, pointwise activations, eval-mode
BatchNorm and dropout, then anything), the scores come from incremental inference (`explain.incremental`;
Nakandala et al., SIGMOD 2019): each layer recomputes only the box its output changes, for
`perturbations_per_eval` window positions at once, and the result equals full re-inference up to float
rounding. Elsewhere (a residual add or `F.relu` in `forward`, an unknown first layer) every window position is
one full forward pass; `perturbations_per_eval` then stacks several positions in one batch, which saves
overhead, not arithmetic. `fast=None` chooses (incremental where the model allows it and it pays: not for
one small image through a small network, `Occlusion.pays`), `fast=True` requires incremental inference (a
`UserError` names what it cannot follow), `fast=False` always re-runs the whole network.

Example:
    >>> occ = Occlusion(model, window=4, stride=2).attribute(x, target=3)     # (B, C, H, W)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from convscope.errors import UserError
from convscope.explain.base import Attribution, Target, class_scores, is_unit, repeat_target, unit_scores, unit_values
from convscope.explain.incremental import NotIncremental, Plan, trace_chain
from convscope.hooks import frozen, get_layer

OUTPUTS = ("logit", "probability")


def _pair(v: int | tuple[int, int], what: str) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or not all(isinstance(p, int) and p >= 1 for p in pair):
        raise UserError(f"The occlusion {what} must be a positive int or (height, width), not {v!r}.")
    return pair  # type: ignore[return-value]


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start of each window along one axis: every `stride` pixels, enough to cover all `size` pixels."""
    return [k * stride for k in range(math.ceil(max(size - window, 0) / stride) + 1)]


_MIN_MACS = 1_500_000  # multiply-adds of one forward of the batch below which full re-inference is faster


class Occlusion(Attribution):
    """Occlusion sensitivity with a `window` sliding by `stride` over the input."""

    name = "occlusion"

    def __init__(self, model: nn.Module, window: int | tuple[int, int] = 8, stride: int | tuple[int, int] = 4,
                 baseline: float | Tensor = 0.0, output: str = "logit", perturbations_per_eval: int = 32,
                 fast: bool | None = None) -> None:
        super().__init__(model)
        if output not in OUTPUTS:
            raise UserError(f"Unknown occlusion output {output!r}: use {' or '.join(OUTPUTS)}.")
        if perturbations_per_eval < 1:
            raise UserError(f"perturbations_per_eval must be at least 1, not {perturbations_per_eval}.")
        self.window, self.stride = _pair(window, "window"), _pair(stride, "stride")
        if fast not in (None, True, False):
            raise UserError(f"fast must be None (choose), True or False, not {fast!r}.")
        self.baseline, self.output, self.per_eval, self.fast = baseline, output, perturbations_per_eval, fast

    def score(self, x: Tensor, target: Target) -> Tensor:
        """The explained (B,) score, without gradients."""
        if is_unit(target):
            return unit_scores(self.model, x, target)  # type: ignore[arg-type]
        return self.explained(self.model(x), target, len(x))

    def explained(self, out: Tensor, target: Target, batch: int) -> Tensor:
        """The (batch,) score from the model's output, or from the unit's layer's output for a unit target."""
        if is_unit(target):
            return unit_values(out, target)  # type: ignore[arg-type]
        return class_scores(out.softmax(1) if self.output == "probability" else out, target, batch)

    def plan(self, x: Tensor, target: Target, starts: Tensor) -> Plan | None:
        """The incremental plan for windows at `starts` (P, 2), or None where full re-inference is used."""
        if self.fast is False:
            return None
        layer = target[0] if is_unit(target) else None  # type: ignore[index]
        if layer is not None:
            get_layer(self.model, layer)  # an unknown name fails here, with suggestions
        try:
            plan = Plan(trace_chain(self.model, x, layer), starts, self.window)
            if self.fast and plan.reason:
                raise NotIncremental(f"{plan.reason}.")
        except NotIncremental as e:
            if self.fast:
                raise NotIncremental(f"Occlusion(fast=True) cannot run incrementally on this model: {e} Use fast=None "
                                     "to fall back to full re-inference.") from None
            return None
        if self.fast:
            return plan
        return plan if plan.incremental and self.pays(plan) else None

    def pays(self, plan: Plan) -> bool:
        """Whether incremental inference should beat full re-inference for `plan` (the `fast=None` choice).

        The engine saves multiply-adds but costs Python work per batch of positions (crops, pastes, one call per
        layer); measured on LeNet-5 (a 2-core CPU), it loses while one forward pass of the batch at one position
        is under about a million multiply-adds (one 28×28 image: 0.4 M) and wins from there, so it is taken
        when that pass is over `_MIN_MACS` and the plan saves at least a third of the arithmetic."""
        counts = plan.macs(self.per_eval)
        full, inc = sum(f for f, _ in counts.values()), sum(i for _, i in counts.values())
        return full >= _MIN_MACS * len(plan.starts) and inc * 1.5 <= full

    def attribute(self, x: Tensor, target: Target) -> Tensor:
        x = self.prepare(x)
        B, C, H, W = x.shape
        (wh, ww), (sh, sw) = self.window, self.stride
        if wh > H or ww > W:
            raise UserError(f"The occlusion window {wh}×{ww} is larger than the {H}×{W} input.")
        fill = self._fill(x)
        boxes = [(y, xx) for y in window_starts(H, wh, sh) for xx in window_starts(W, ww, sw)]
        total = torch.zeros(B, 1, H, W, dtype=x.dtype, device=x.device)
        count = torch.zeros(1, 1, H, W, dtype=x.dtype, device=x.device)
        with torch.no_grad(), frozen(self.model):
            plan = self.plan(x, target, torch.tensor(boxes, device=x.device).view(-1, 2))
            if plan is not None:
                drops = self._incremental(plan, fill, target)  # (P, B)
                for p, (y, xx) in enumerate(boxes):
                    total[:, :, y:y + wh, xx:xx + ww] += drops[p].view(B, 1, 1, 1)
                    count[:, :, y:y + wh, xx:xx + ww] += 1
                return (total / count).expand(B, C, H, W).contiguous()
            base = self.score(x, target)  # (B,)
            for start in range(0, len(boxes), self.per_eval):
                chunk = boxes[start:start + self.per_eval]
                batch = x.repeat(len(chunk), 1, 1, 1)  # (P·B, C, H, W), position-major
                for p, (y, xx) in enumerate(chunk):
                    region = (slice(p * B, (p + 1) * B), slice(None), slice(y, y + wh), slice(xx, xx + ww))
                    batch[region] = fill[:, :, y:y + wh, xx:xx + ww]
                drop = base.repeat(len(chunk)) - self.score(batch, repeat_target(target, B, len(chunk)))
                for p, (y, xx) in enumerate(chunk):
                    total[:, :, y:y + wh, xx:xx + ww] += drop[p * B:(p + 1) * B].view(B, 1, 1, 1)
                    count[:, :, y:y + wh, xx:xx + ww] += 1
        return (total / count).expand(B, C, H, W).contiguous()

    def _incremental(self, plan: Plan, fill: Tensor, target: Target) -> Tensor:
        """The (P, B) score drops of every window position, by incremental inference."""
        B = len(fill)
        base = self.explained(plan.chain.outputs[-1], target, B)  # (B,)
        drops = fill.new_empty(len(plan.starts), B)
        for positions, out in plan.outputs(fill, self.per_eval):
            P = len(positions)
            scores = self.explained(out, repeat_target(target, B, P), P * B).view(P, B)
            drops[torch.tensor(positions, device=drops.device)] = base - scores
        return drops

    def _fill(self, x: Tensor) -> Tensor:
        """The baseline as a (B, C, H, W) tensor."""
        if isinstance(self.baseline, (int, float)):
            return torch.full_like(x, float(self.baseline))
        b = self.baseline.to(x.device, x.dtype)
        if b.shape == x.shape[1:]:
            return b.expand_as(x)
        if b.shape != x.shape:
            raise UserError(f"The occlusion baseline has shape {tuple(b.shape)}: give a number, an image "
                            f"{tuple(x.shape[1:])} or one per example {tuple(x.shape)}.")
        return b


__all__ = ["OUTPUTS", "Occlusion", "window_starts"]
