"""How a network's features evolve during training (Zeiler and Fergus, "Visualizing and Understanding
Convolutional Networks", ECCV 2014, §4.1 and Fig. 4).

The paper follows a few feature maps of each layer across training epochs: at each epoch, the strongest
activation of the map over the training set, projected back to pixels. "The lower layers of the model can be
seen to converge within a few epochs. However, the upper layers only develop after a considerable number of
epochs." Here, from the weights a run kept for each epoch (`train.checkpoint.epoch_weights`):

- `channel_maxima(model, x, layers)`: per image and channel, the largest activation of the layer's output
  (for a conv layer, before its ReLU) and where it is;
- `feature_evolution(model, weights, x, layers, channels, k)`: for the chosen channels of each layer, the top-k
  images by that maximum at every epoch (which image, its value, the position of its maximum);
- `settle_epochs(index, epochs)`: per channel, the first epoch e such that the top image is the same at every
  epoch from e on (the last epoch when it still changes there); a layer's "settle epoch" is the median over
  its chosen channels. One image per channel counts (an image's best position), as in the paper's top-9 grids.

Example:
    >>> evo = feature_evolution(model, {e: load_epoch_weights(p) for e, p in epoch_weights(run).items()}, x)
    >>> evo.settle_epoch("features.conv1")
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from convscope.errors import UserError
from convscope.hooks import conv_layers, eval_mode, model_device, record


@torch.no_grad()
def channel_maxima(model: nn.Module, x: Tensor, layers: Sequence[str],
                   batch_size: int = 500) -> dict[str, tuple[Tensor, Tensor]]:
    """For each layer: the (N, C) largest activation of each channel on each image, and its (N, C, 2) position
    (row, column). The model runs in eval mode and is left as found."""
    device = model_device(model, default=x.device)
    values: dict[str, list[Tensor]] = {n: [] for n in layers}
    where: dict[str, list[Tensor]] = {n: [] for n in layers}
    with eval_mode(model), record(model, list(layers)) as acts:
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size].to(device))
            for n in layers:
                a = acts[n]
                if a.dim() != 4:
                    raise UserError(f"Layer {n!r} puts out {tuple(a.shape)}, not feature maps (B, C, h, w).")
                v, idx = a.flatten(2).max(2)  # (B, C): the best position of each map
                values[n].append(v.cpu())
                where[n].append(torch.stack([idx // a.shape[3], idx % a.shape[3]], -1).cpu())
    return {n: (torch.cat(values[n]), torch.cat(where[n])) for n in layers}


@dataclass
class Evolution:
    """The top-k images of chosen channels at every epoch; arrays per layer, channels × epochs (× k)."""

    epochs: list[int]
    channels: dict[str, list[int]]
    index: dict[str, np.ndarray]  # (c, E, k) the images' indices into x, strongest first
    value: dict[str, np.ndarray]  # (c, E, k) their maximal activation
    pos: dict[str, np.ndarray]  # (c, E, k, 2) where the maximum is, in the layer's output

    @property
    def layers(self) -> list[str]:
        return list(self.channels)

    def settle(self, layer: str) -> np.ndarray:
        """(c,) each chosen channel's settle epoch (`settle_epochs` of its top image)."""
        return settle_epochs(self.index[layer][:, :, 0], self.epochs)

    def settle_epoch(self, layer: str) -> float:
        """The layer's settle epoch: the median over its chosen channels."""
        return float(np.median(self.settle(layer)))

    def overlap(self, layer: str) -> np.ndarray:
        """(c, E) the fraction of each epoch's top-k images that are among the last epoch's top-k."""
        idx = self.index[layer]
        k = idx.shape[2]
        final = idx[:, -1]
        return np.array([[len(set(idx[c, e]) & set(final[c])) / k for e in range(idx.shape[1])]
                         for c in range(idx.shape[0])], dtype=np.float32)


def settle_epochs(index: np.ndarray, epochs: Sequence[int]) -> np.ndarray:
    """(c,) for a (c, E) array of top-image indices by epoch: the first epoch from which it no longer changes."""
    index = np.asarray(index)
    out = np.empty(len(index), dtype=np.int64)
    for c, row in enumerate(index):
        e = len(row) - 1
        while e > 0 and row[e - 1] == row[-1]:
            e -= 1
        out[c] = epochs[e]
    return out


def pick_channels(n_channels: int, n: int) -> list[int]:
    """`n` channels spread evenly over `n_channels` (all of them when there are no more than n)."""
    if n >= n_channels:
        return list(range(n_channels))
    return sorted({int(round(v)) for v in np.linspace(0, n_channels - 1, n)})


def feature_evolution(model: nn.Module, weights: Mapping[int, Mapping[str, Tensor]], x: Tensor,
                      layers: Sequence[str] | None = None, channels: int | Mapping[str, Sequence[int]] = 8,
                      k: int = 9, batch_size: int = 500) -> Evolution:
    """The top-`k` images of `x` for chosen channels of each layer, at each epoch of `weights` (epoch -> state
    dict, e.g. from `epoch_weights`). `channels` is a number per layer (spread evenly) or the channels by layer;
    `layers` defaults to every conv layer. The weights are loaded into a copy: `model` is left as found."""
    if not weights:
        raise UserError("No epochs to follow: train with keep_epochs=true so the run keeps every epoch's weights.")
    layers = list(layers or conv_layers(model))
    work = copy.deepcopy(model)
    epochs = sorted(weights)
    chosen: dict[str, list[int]] = {}
    found: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {n: [] for n in layers}
    for e in epochs:
        work.load_state_dict(weights[e])
        maxima = channel_maxima(work, x, layers, batch_size)
        for n in layers:
            v, where = maxima[n]  # (N, C), (N, C, 2)
            if n not in chosen:
                chosen[n] = (pick_channels(v.shape[1], channels) if isinstance(channels, int)
                             else [int(c) for c in channels[n]])
            v, where = v[:, chosen[n]], where[:, chosen[n]]
            top_v, top_i = v.topk(min(k, len(v)), dim=0)  # (k, c) strongest images per channel
            pos = where.gather(0, top_i[..., None].expand(-1, -1, 2))  # (k, c, 2)
            found[n].append((top_i.T, top_v.T, pos.transpose(0, 1)))
    stack = lambda n, j: np.stack([f[j].numpy() for f in found[n]], axis=1)  # noqa: E731  (c, E, k...)
    return Evolution(epochs=epochs, channels=chosen, index={n: stack(n, 0) for n in layers},
                     value={n: stack(n, 1) for n in layers}, pos={n: stack(n, 2) for n in layers})


__all__ = ["Evolution", "channel_maxima", "feature_evolution", "pick_channels", "settle_epochs"]
