"""How much of an edge map survives pooling when the input is noisy: max versus average pooling.

The textbook convolution chapter (Qiu Xipeng, *Neural Networks and Deep Learning*, ch. 5, §5.2.2;
docs/REFERENCE.md §1) presents pooling as a summary of each region, the maximum or the mean, which shrinks
the map and makes it tolerant to small shifts. Which summary keeps the *signal* when the input is
noisy? We plant an edge detector (Sobel kernels, `analysis.kernels`) in a conv layer, rectify it as a
CNN does, and pool; "survival" at noise level σ is how well the pooled map of the noisy image still
matches the pooled map of the clean one:

    survival(σ) = corr( pool(ReLU(conv(x + σ·ε))), pool(ReLU(conv(x))) ),   ε ~ N(0, 1) per pixel,

the Pearson correlation over all pooled positions and channels of one image, averaged over images
and noise draws. It is 1 for σ = 0 under either pooling, and falls towards 0 as noise drowns the edges.
Max pooling keeps each region's strongest response, noise peaks included; average pooling averages
the noise of k×k responses down before comparing.

Example:
    >>> conv = planted_conv([sobel_x(), sobel_y()])
    >>> s = edge_survival(images, conv, sigmas=[0.0, 0.1, 0.2], pool="max")   # (3,), s[0] == 1
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import unknown_name

POOLS = ("max", "avg")


def pool2d(maps: torch.Tensor, kind: str, size: int = 2) -> torch.Tensor:
    """Non-overlapping `size × size` max or average pooling of `(B, C, H, W)` maps."""
    if kind == "max":
        return F.max_pool2d(maps, size)
    if kind == "avg":
        return F.avg_pool2d(maps, size)
    raise unknown_name("pooling", kind, POOLS)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of `a[i]` and `b[i]` over all their other axes, one value per row `i`.

    A row that is constant in `a` or `b` has no defined correlation; it gives NaN, never a silent 0.
    """
    a = a.flatten(1).double()  # (B, n)
    b = b.flatten(1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    num = (a * b).sum(1)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, float("nan")))


@torch.no_grad()
def edge_maps(images: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """Rectified responses of the planted conv: `(B, 1, H, W)` images -> `(B, K, H', W')` maps."""
    device = next(conv.parameters()).device
    return F.relu(conv(images.to(device)))


@torch.no_grad()
def edge_survival(images: np.ndarray | torch.Tensor, conv: nn.Module, sigmas: Sequence[float], pool: str,
                  size: int = 2, repeats: int = 1, seed: int = 0) -> np.ndarray:
    """Survival of the pooled edge map under additive Gaussian noise, one value per σ (module docstring).

    Args:
        images: grey images `(B, H, W)` or `(B, 1, H, W)`, values in [0, 1].
        conv: the edge detector, e.g. `planted_conv([sobel_x(), sobel_y()])`; its device is used.
        sigmas: noise standard deviations (in the units of the image, so 0.1 is 10 % of full range).
        pool: "max" or "avg".
        size: pooling window and stride.
        repeats: noise draws per image and σ.
        seed: seed of the noise; the same seed gives max and avg pooling the same noisy images.

    Returns:
        float64 array `(len(sigmas),)`: the mean correlation over images and draws.
    """
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    x = x[:, None] if x.ndim == 3 else x  # (B, H, W) -> (B, 1, H, W)
    clean = pool2d(edge_maps(x, conv), pool, size)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for sigma in sigmas:
        scores = []
        for _ in range(repeats):
            noisy_x = x + float(sigma) * torch.randn(x.shape, generator=gen)
            noisy = pool2d(edge_maps(noisy_x, conv), pool, size)
            scores.append(correlation(noisy, clean))
        out.append(float(torch.cat(scores).mean()))
    return np.array(out)


@torch.no_grad()
def pooled_examples(image: np.ndarray, conv: nn.Module, sigma: float, size: int = 2,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """The maps behind one survival value, for a figure: one grey `(H, W)` image at one σ.

    Returns a dict of 2-D float32 arrays: "noisy" (the noisy input), "clean_edges" and "noisy_edges"
    (the rectified edge maps summed over the detector's channels), and "clean_max", "noisy_max",
    "clean_avg", "noisy_avg" (the pooled maps, summed over channels).
    """
    x = torch.as_tensor(np.asarray(image), dtype=torch.float32)[None, None]  # (1, 1, H, W)
    gen = torch.Generator().manual_seed(seed)
    noisy_x = x + float(sigma) * torch.randn(x.shape, generator=gen)
    clean, noisy = edge_maps(x, conv), edge_maps(noisy_x, conv)
    out = {"noisy": noisy_x[0, 0], "clean_edges": clean[0].sum(0), "noisy_edges": noisy[0].sum(0)}
    for kind in POOLS:
        out[f"clean_{kind}"] = pool2d(clean, kind, size)[0].sum(0)
        out[f"noisy_{kind}"] = pool2d(noisy, kind, size)[0].sum(0)
    return {k: v.cpu().numpy().astype(np.float32) for k, v in out.items()}


__all__ = ["POOLS", "correlation", "edge_maps", "edge_survival", "pool2d", "pooled_examples"]
