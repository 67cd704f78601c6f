"""Occlusion (Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, §4.2).

Slide a window of `baseline` values (grey, zero, or an image) over the input; at each position the drop
of the explained score, s(x) − s(x with the window occluded), is credited to every pixel under the
window, and each pixel's attribution is the mean over the windows that cover it (Captum's definition,
so the maps agree). Windows start every `stride` pixels and the last row and column of windows may be
cut off at the border, so every pixel is covered. The window spans all channels. `output="probability"`
explains the softmax probability of the target class instead of its logit.

Every window position is one full forward pass here; `perturbations_per_eval` stacks several positions in
one batch, which saves overhead, not arithmetic.

Example:
    >>> occ = Occlusion(model, window=4, stride=2).attribute(x, target=3)     # (B, C, H, W)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from convscope.errors import UserError
from convscope.explain.base import Attribution, Target, class_scores, is_unit, repeat_target, unit_scores
from convscope.hooks import frozen

OUTPUTS = ("logit", "probability")


def _pair(v: int | tuple[int, int], what: str) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or not all(isinstance(p, int) and p >= 1 for p in pair):
        raise UserError(f"The occlusion {what} must be a positive int or (height, width), not {v!r}.")
    return pair  # type: ignore[return-value]


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start of each window along one axis: every `stride` pixels, enough to cover all `size` pixels."""
    return [k * stride for k in range(math.ceil(max(size - window, 0) / stride) + 1)]


class Occlusion(Attribution):
    """Occlusion sensitivity with a `window` sliding by `stride` over the input."""

    name = "occlusion"

    def __init__(self, model: nn.Module, window: int | tuple[int, int] = 8, stride: int | tuple[int, int] = 4,
                 baseline: float | Tensor = 0.0, output: str = "logit", perturbations_per_eval: int = 32) -> None:
        super().__init__(model)
        if output not in OUTPUTS:
            raise UserError(f"Unknown occlusion output {output!r}: use {' or '.join(OUTPUTS)}.")
        if perturbations_per_eval < 1:
            raise UserError(f"perturbations_per_eval must be at least 1, not {perturbations_per_eval}.")
        self.window, self.stride = _pair(window, "window"), _pair(stride, "stride")
        self.baseline, self.output, self.per_eval = baseline, output, perturbations_per_eval

    def score(self, x: Tensor, target: Target) -> Tensor:
        """The explained (B,) score, without gradients."""
        if is_unit(target):
            return unit_scores(self.model, x, target)  # type: ignore[arg-type]
        out = self.model(x)
        if self.output == "probability":
            out = out.softmax(1)
        return class_scores(out, target, len(x))

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
