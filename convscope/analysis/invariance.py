"""Invariance scores of a layer's units (Goodfellow, Le, Saxe, Lee and Ng, NIPS 2009; used by Shang et al. 2016).

For each filter of a layer, a threshold t is set so that the filter fires (response > t) on 1 % of
all (stimulus, position) responses: its *global firing rate* G. For every place where it fires on an
original stimulus, the *local firing rate* L is the fraction of transformed versions of that stimulus
on which it still fires at the same spatial location. The invariance score is L / G: how much more
likely the unit is to fire on a transformed input given it fired on the original, than on any input.
A layer's score averages its filters (Goodfellow et al. average the top 20 %: `top_fraction=0.2`).
Transformations of docs/REFERENCE.md §4: horizontal flip, rotation by 15°, translation by ±3 px.

With `distributed=True` in a `torch.distributed` process group, each rank computes the responses of its
share of the stimulus batches (`shards.rank_batches`) and the scores are the one-process scores exactly:
the firing counts are summed, and each filter's threshold, an order statistic, is found among the union of
every rank's largest responses (the threshold is exceeded by about `rate` of all responses, so the `rate`
fraction plus one of each rank's largest holds it).

Example:
    >>> scores = invariance_scores(model, x, ["features.conv1", "features.conv2"])
    >>> scores["features.conv2"]["translate"].score
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import UserError
from convscope.hooks import activations
from convscope.shards import gather_rows, rank_batches, sum_over_ranks

Transform = Callable[[torch.Tensor], torch.Tensor]


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def rotate(degrees: float) -> Transform:
    """Rotation about the image centre, zeros outside (bilinear)."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        a = math.radians(degrees)
        theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]],
                             dtype=x.dtype, device=x.device).expand(len(x), 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")

    return fn


def translate(dx: int, dy: int) -> Transform:
    """Shift by (dx, dy) pixels, zeros coming in at the border."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = torch.zeros_like(x)
        out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        return out

    return fn


def standard_transforms() -> dict[str, list[Transform]]:
    """The paper's three families; a family's versions are averaged into one local firing rate."""
    return {
        "hflip": [hflip],
        "rotate15": [rotate(15), rotate(-15)],
        "translate3": [translate(3, 0), translate(-3, 0), translate(0, 3), translate(0, -3)],
    }


@dataclass
class Invariance:
    """Per-filter rates of one layer under one transformation family, and the layer's score."""

    threshold: np.ndarray  # (C,)
    global_rate: np.ndarray  # (C,) G, ≈ the firing quantile
    local_rate: np.ndarray  # (C,) L, NaN for a filter that never fires
    score: float  # mean of L / G over the filters kept


@torch.no_grad()
def invariance_scores(model: nn.Module, x: torch.Tensor, layers: list[str],
                      transforms: dict[str, list[Transform]] | None = None, rate: float = 0.01,
                      top_fraction: float | None = None, batch_size: int = 250,
                      distributed: bool = False) -> dict[str, dict[str, Invariance]]:
    """Invariance score of every named layer's filters under each transformation family.

    Args:
        model: any model; it is run in eval mode and left as found.
        x: `(N, C, H, W)` stimuli.
        layers: dotted names of layers whose outputs are `(N, C, h, w)` maps. The score is defined for
            spatial maps only (a unit fires "at the same location"): a layer with another output shape,
            such as a fully connected `(N, C)`, is refused.
        transforms: family name → list of transforms (default: `standard_transforms()`).
        rate: the global firing rate the thresholds are set to.
        top_fraction: average only the most invariant fraction of filters (Goodfellow: 0.2); None = all.
        batch_size: stimuli per forward pass. Memory holds the original responses of every layer
            (to set the thresholds) and one batch of transformed ones, never all transformed maps.
        distributed: `x` is the whole set of stimuli on every rank of the process group; each scans its
            share of the batches and all get the one-process scores (in one process: the plain pass).
    """
    transforms = transforms or standard_transforms()
    if distributed:
        chunks = [x[i] for i in rank_batches(len(x), batch_size)] or [x[:0]]
    else:
        chunks = list(torch.split(x, batch_size))
    original = _responses(model, chunks, layers)
    for name in layers:
        if original[name].ndim != 4:
            raise UserError(f"Layer {name!r} puts out shape {tuple(original[name].shape)}, not (N, C, h, w) maps, and "
                            "an invariance score counts firings at the same spatial location: name a conv or "
                            "pooling layer instead.")
    fires: dict[str, torch.Tensor] = {}
    fired: dict[str, torch.Tensor] = {}  # (C,) firings per filter over all stimuli and positions
    thresholds: dict[str, torch.Tensor] = {}
    totals: dict[str, int] = {}
    for name in layers:
        a = original.pop(name)  # (N, C, h, w); freed once its firing map is known
        per_filter = a.transpose(0, 1).flatten(1)  # (C, N·h·w)
        total = totals[name] = len(x) * a.shape[2] * a.shape[3]  # responses per filter, over every rank
        # the value exceeded by a `rate` fraction of each filter's responses: the k-th smallest, that is the
        # m-th largest (kthvalue, topk: no size limit)
        k = max(total - max(1, int(rate * total)), 1)
        if distributed:
            m = total - k + 1
            largest = gather_rows(per_filter.topk(min(m, per_filter.shape[1]), dim=1).values)  # (C, ≤ W·m)
            thresholds[name] = largest.topk(m, dim=1).values[:, -1]
        else:
            thresholds[name] = per_filter.kthvalue(k, dim=1).values  # (C,)
        fires[name] = a > thresholds[name].view(1, -1, 1, 1)
        fired[name] = sum_over_ranks(fires[name].sum(dim=(0, 2, 3)))
    out: dict[str, dict[str, Invariance]] = {name: {} for name in layers}
    for family, fns in transforms.items():
        hits = {name: torch.zeros_like(fired[name]) for name in layers}
        start = 0
        for chunk in chunks:
            stop = start + len(chunk)
            for fn in fns:
                moved = activations(model, fn(chunk), layers)
                for name in layers:
                    t = thresholds[name].view(1, -1, 1, 1)
                    still = (moved[name] > t) & fires[name][start:stop]  # still firing, same place
                    hits[name] += still.sum(dim=(0, 2, 3))
            start = stop
        for name in layers:
            hits[name] = sum_over_ranks(hits[name])
            g = fired[name].double() / totals[name]  # (C,) global firing rate
            local = hits[name].double() / (fired[name].double() * len(fns))  # NaN where a filter never fires
            ratio = (local / g).cpu().numpy()
            ratio = ratio[np.isfinite(ratio)]
            if top_fraction is not None and len(ratio):
                ratio = np.sort(ratio)[::-1][:max(1, int(round(top_fraction * len(ratio))))]
            out[name][family] = Invariance(thresholds[name].double().cpu().numpy(), g.cpu().numpy(),
                                           local.cpu().numpy(), float(ratio.mean()) if len(ratio) else float("nan"))
    return out


def _responses(model: nn.Module, chunks: list[torch.Tensor], layers: list[str]) -> dict[str, torch.Tensor]:
    parts = [activations(model, chunk, layers) for chunk in chunks]
    return {name: torch.cat([p.pop(name) for p in parts]) for name in layers}


__all__ = ["Invariance", "hflip", "invariance_scores", "rotate", "standard_transforms", "translate"]
