"""Occlusion as Zeiler and Fergus's Fig. 7 ("Visualizing and Understanding Convolutional Networks", ECCV 2014,
§4.2), and a test-set figure made from it, "occlusion pointing".

`occlusion_maps` slides a square of `fill` (grey) over each image and, with the square at each position,
records three maps, one value per position:

- the total activation of the strongest feature map of `layer`, default the last conv layer: the sum over
  positions of its rectified output, max(a, 0) (the paper's maps follow a ReLU; a conv layer's recorded output
  precedes it); "strongest" is the map with the largest single activation on the unoccluded image;
- the probability of the correct class (`target`);
- the most probable class.

It also returns the deconvnet projection of that strongest map on the unoccluded image (the deconvnet rule
gradient of its total activation, `explain.Deconvnet`), which shows the input pattern the map responds to.

`occlusion_pointing` turns the maps into one number per image: whether the window position that lowers the
correct-class probability most is centred inside an "evidence region" of the image (`ink_region`: the
pixels brighter than a threshold, the digit's strokes on MNIST; or `top_fraction_region`: the top q of
|attribution|). Its chance baseline is the fraction of window positions centred inside the region: what a
position picked at random would score. The fraction of hits over a test set, beside the chance baseline,
says how often occlusion points at the object, as the paper shows for its three images.

`pointing_scan` does it over a whole test set, batch by batch, for several regions at once; with
`distributed=True` in a `torch.distributed` process group each rank occludes its share of the batches
(`shards.rank_batches`) and every rank gets every image's result in dataset order (`shards.gather_examples`),
the one-process result exactly.

Window positions follow `explain.occlusion.window_starts` (the same grid as `Occlusion`; the last row and
column of windows may be cut off at the border). With `stride == window` the windows tile the image and the
probability map equals `Occlusion(model, window, stride, baseline=fill, output="probability")` up to the
sign and the base value, which the tests check.

Example:
    >>> maps = occlusion_maps(model, x, target=y, window=7, stride=2)
    >>> maps.probability.shape                                  # (B, rows, cols)
    >>> occlusion_pointing(maps, ink_region(x)).fraction        # hits over the batch
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from convscope.errors import UserError
from convscope.explain.base import class_indices
from convscope.explain.occlusion import window_starts
from convscope.explain.relu_rules import Deconvnet
from convscope.hooks import conv_layers, frozen, model_device, record
from convscope.shards import gather_examples, rank_batches


@dataclass
class OcclusionMaps:
    """What `occlusion_maps` measures for a batch of B images, with the window at rows × cols positions."""

    layer: str
    window: tuple[int, int]
    rows: list[int]  # the windows' top edges
    cols: list[int]  # their left edges
    channel: Tensor  # (B,) the strongest map of `layer` on the unoccluded image
    feature: Tensor  # (B, rows, cols) that map's total rectified activation with the window at each position
    probability: Tensor  # (B, rows, cols) the correct class's probability
    label: Tensor  # (B, rows, cols) the most probable class
    base_feature: Tensor  # (B,) the total activation on the unoccluded image
    base_probability: Tensor  # (B,)
    base_label: Tensor  # (B,)
    projection: Tensor  # (B, C, H, W) deconvnet projection of the strongest map (unoccluded)

    def centres(self, height: int, width: int) -> tuple[Tensor, Tensor]:
        """The centre pixel (row, column) of each window, cut to the image: (rows,), (cols,)."""
        (wh, ww) = self.window
        ys = torch.tensor([(y + min(y + wh, height) - 1) // 2 for y in self.rows])
        xs = torch.tensor([(x + min(x + ww, width) - 1) // 2 for x in self.cols])
        return ys, xs


@torch.no_grad()
def _forward(model: nn.Module, x: Tensor, layer: str) -> tuple[Tensor, Tensor]:
    """Class probabilities (B, K) and the layer's output (B, C, h, w)."""
    with record(model, [layer]) as acts:
        out = model(x)
    if out.dim() != 2:
        raise UserError(f"The model's output has shape {tuple(out.shape)}, not (B, classes): occlusion maps need "
                        "class probabilities.")
    if acts[layer].dim() != 4:
        raise UserError(f"Layer {layer!r} puts out {tuple(acts[layer].shape)}, not feature maps (B, C, h, w): "
                        "choose a conv layer.")
    return out.softmax(1), acts[layer]


def occlusion_maps(model: nn.Module, x: Tensor, target: int | Tensor, *, window: int = 7, stride: int = 2,
                   fill: float = 0.5, layer: str | None = None, batch_size: int = 1024) -> OcclusionMaps:
    """Fig. 7 of Zeiler and Fergus for each image of `x` (B, C, H, W); `target` is each image's correct class.

    `window` is the side of the square, `stride` the step between positions, `fill` its value (0.5: mid grey for
    images in [0, 1]); `batch_size` bounds the occluded images per forward pass. The model is left as found.
    """
    if window < 1 or stride < 1:
        raise UserError(f"The occlusion window and stride must be at least 1, not {window} and {stride}.")
    device = model_device(model, default=x.device)
    x = x.detach().to(device)
    B, C, H, W = x.shape
    if window > min(H, W):
        raise UserError(f"The occlusion window {window}×{window} is larger than the {H}×{W} input.")
    layer = layer or (conv_layers(model) or [None])[-1]
    if layer is None:
        raise UserError("The model has no conv layer: pass layer='dotted.name' of a layer with feature maps.")
    rows, cols = window_starts(H, window, stride), window_starts(W, window, stride)
    boxes = [(y, xx) for y in rows for xx in cols]
    with frozen(model), torch.no_grad():
        probs, acts = _forward(model, x, layer)
        y_true = class_indices(target, B, probs.shape[1], device)
        channel = acts.flatten(2).amax(2).argmax(1)  # (B,) the map with the largest single activation
        base_feature = acts[torch.arange(B), channel].clamp(min=0).flatten(1).sum(1)
        base_prob = probs.gather(1, y_true[:, None])[:, 0]
        feature, prob, label = (torch.empty(B, len(boxes), device=device) for _ in range(3))
        per = max(1, batch_size // B)  # window positions per forward pass
        for start in range(0, len(boxes), per):
            chunk = boxes[start:start + per]
            batch = x.repeat(len(chunk), 1, 1, 1)  # (P·B, C, H, W), position-major
            for p, (y, xx) in enumerate(chunk):
                batch[p * B:(p + 1) * B, :, y:y + window, xx:xx + window] = fill
            p_occ, a_occ = _forward(model, batch, layer)
            idx = torch.arange(len(batch), device=device)
            ch, yt = channel.repeat(len(chunk)), y_true.repeat(len(chunk))
            sl = slice(start, start + len(chunk))
            feature[:, sl] = a_occ[idx, ch].clamp(min=0).flatten(1).sum(1).view(len(chunk), B).T  # (B, P)
            prob[:, sl] = p_occ[idx, yt].view(len(chunk), B).T
            label[:, sl] = p_occ.argmax(1).view(len(chunk), B).T.float()
    projection = torch.empty_like(x)
    for c in channel.unique().tolist():  # one pass per distinct map: the examples' projections are independent
        same = (channel == c).nonzero()[:, 0]
        projection[same] = Deconvnet(model).attribute(x[same], (layer, c))
    shape = (B, len(rows), len(cols))
    return OcclusionMaps(layer=layer, window=(window, window), rows=rows, cols=cols, channel=channel.cpu(),
                         feature=feature.view(shape).cpu(), probability=prob.view(shape).cpu(),
                         label=label.view(shape).long().cpu(), base_feature=base_feature.cpu(),
                         base_probability=base_prob.cpu(), base_label=probs.argmax(1).cpu(),
                         projection=projection.detach().cpu())


@dataclass
class Pointing:
    """Occlusion pointing for B images: where the correct class's probability drops most, and whether that
    window is centred inside the evidence region."""

    best: Tensor  # (B, 2) row and column index of the window with the largest drop
    drop: Tensor  # (B,) that drop, base probability minus occluded
    hit: Tensor  # (B,) bool: that window's centre lies inside the region (False when nothing drops)
    chance: Tensor  # (B,) fraction of window positions centred inside the region

    @property
    def fraction(self) -> float:
        """The fraction of images whose largest drop is inside the region."""
        return float(self.hit.float().mean()) if len(self.hit) else float("nan")

    @property
    def chance_fraction(self) -> float:
        """The mean chance baseline: the expected fraction for a window position drawn at random."""
        return float(self.chance.mean()) if len(self.chance) else float("nan")


def occlusion_pointing(maps: OcclusionMaps, region: Tensor) -> Pointing:
    """Whether the window that lowers the correct class's probability most is centred inside `region`
    (B, H, W) bool, per image; ties go to the first position in row-major order."""
    B, H, W = region.shape
    ys, xs = maps.centres(H, W)
    inside = region[:, ys][:, :, xs].cpu()  # (B, rows, cols): each window's centre in the region
    drop = maps.base_probability[:, None, None] - maps.probability  # (B, rows, cols)
    flat = drop.flatten(1)
    best = flat.argmax(1)
    r, c = best // drop.shape[2], best % drop.shape[2]
    top = flat.gather(1, best[:, None])[:, 0]
    hit = inside[torch.arange(B), r, c] & (top > 0)
    return Pointing(best=torch.stack([r, c], 1), drop=top, hit=hit, chance=inside.flatten(1).float().mean(1))


Region = Callable[[Tensor, OcclusionMaps], Tensor]  # (a batch of images, their maps) -> (B, H, W) bool


def pointing_scan(model: nn.Module, x: Tensor, target: Tensor, regions: dict[str, Region], *, batch_size: int = 50,
                  distributed: bool = False, **occlusion: object) -> dict[str, Pointing]:
    """`occlusion_pointing` of every image of `x` (N, C, H, W) with correct classes `target` (N,), per region.

    Args:
        regions: name -> the evidence region of a batch, e.g. `lambda xb, maps: ink_region(xb)`.
        batch_size: images per `occlusion_maps` call.
        distributed: `x` and `target` are the whole set on every rank of the process group; each occludes its
            share of the batches and all get the one-process result (in one process: the plain pass).
        occlusion: `occlusion_maps`'s keywords window, stride, fill, layer.

    Example:
        >>> hits = pointing_scan(model, x_test, y_test, {"ink": lambda xb, _: ink_region(xb)}, window=7)
        >>> hits["ink"].fraction, hits["ink"].chance_fraction
    """
    if len(target) != len(x):
        raise UserError(f"pointing_scan needs one class per image: {len(target)} classes for {len(x)} images.")
    batches = rank_batches(len(x), batch_size) if distributed else list(torch.arange(len(x)).split(batch_size))
    parts: dict[str, list[Pointing]] = {name: [] for name in regions}
    for i in batches:
        maps = occlusion_maps(model, x[i], target[i], **occlusion)  # type: ignore[arg-type]
        for name, region in regions.items():
            parts[name].append(occlusion_pointing(maps, region(x[i], maps)))
    index = torch.cat(batches) if batches else torch.zeros(0, dtype=torch.long)
    out = {}
    for name, ps in parts.items():
        joined = {f.name: torch.cat([getattr(p, f.name) for p in ps]) if ps else torch.zeros(0)
                  for f in fields(Pointing)}
        out[name] = Pointing(**{f: gather_examples(t, index, len(x)) if distributed else t
                                for f, t in joined.items()})
    return out


def ink_region(x: Tensor, threshold: float = 0.5) -> Tensor:
    """(B, H, W): the pixels where any channel of `x` exceeds `threshold` (the strokes of an MNIST digit)."""
    return (x > threshold).any(1)


def top_fraction_region(attribution: Tensor, q: float = 0.1) -> Tensor:
    """(B, H, W): each image's top `q` of pixels by |attribution| summed over channels (ties included)."""
    if not 0 < q <= 1:
        raise UserError(f"The region's fraction q must be in (0, 1], not {q}.")
    a = attribution.abs().sum(1)  # (B, H, W)
    flat = a.flatten(1)
    k = max(1, round(q * flat.shape[1]))
    cut = flat.topk(k, dim=1).values[:, -1]  # (B,) the k-th largest value
    return (a >= cut[:, None, None]) & (a > 0)


__all__ = ["OcclusionMaps", "Pointing", "Region", "ink_region", "occlusion_maps", "occlusion_pointing", "pointing_scan",
           "top_fraction_region"]
