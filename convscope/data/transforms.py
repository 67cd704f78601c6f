"""Input transforms of the RECOS experiments: grey-level inversion and digits on random backgrounds.

Kuo, "Understanding convolutional neural networks with a mathematical model", JVCIR 41, 2016
(arXiv 1609.04112; docs/REFERENCE.md §3) tests a LeNet-5 trained on MNIST on grey-level inverted digits
(255 − x; here 1 − x on [0, 1] pixels) and on digits composited on 10 random backgrounds.

The article does not say how its backgrounds were made, so this file fixes a documented, seeded
generator. Background k is a mixture of two textures, drawn from `numpy.random.default_rng([seed, k])`:

    noise_k   = white Gaussian noise smoothed by a Gaussian of width sigma_k ∈ [0.8, 3] pixels
                (periodic borders), rescaled to [0, 1];
    grating_k = ½ + ½·cos(2π·f_k·(x·cos θ_k + y·sin θ_k)/size + φ_k), f_k ∈ [1.5, 5] cycles per image,
                θ_k ∈ [0, π), φ_k ∈ [0, 2π);
    bg_k      = w_k·grating_k + (1 − w_k)·noise_k, w_k ∈ [0.2, 0.8], rescaled to [0, 1].

`background_params` returns those drawn numbers so a result can save them next to the textures.
A digit x ∈ [0, 1] goes onto background b with the digit's ink as opacity (`composite`):

    out = x + (1 − x)·α·b

so ink pixels stay at 1, empty pixels show the background darkened to [0, α], and the digit stays
the brightest thing in the image (α = 0.5 by default).

Example:
    >>> bgs = backgrounds(10, 28, seed=0)                        # (10, 28, 28) in [0, 1]
    >>> idx = background_indices(len(x), 10, seed=1)              # (N,) which background each image gets
    >>> x_bg = composite(x, bgs, idx)                             # (N, 1, 28, 28)
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

SIGMA_RANGE = (0.8, 3.0)  # pixels, width of the Gaussian that smooths the noise
FREQ_RANGE = (1.5, 5.0)  # cycles per image of the grating
MIX_RANGE = (0.2, 0.8)  # weight of the grating against the noise


def invert(x: ArrayT) -> ArrayT:
    """Grey-level inversion `1 − x` of images in [0, 1] (the article's 255 − x); an involution."""
    return 1 - x


def background_params(n: int = 10, seed: int = 0) -> list[dict[str, float]]:
    """The drawn parameters of backgrounds 0…n−1 for `seed` (what `backgrounds` renders).

    Returns:
        One dict per background: sigma (noise smoothing, pixels), freq (grating cycles per image),
        theta and phase (radians), mix (grating weight).
    """
    return [_draw(np.random.default_rng([seed, k]))[0] for k in range(n)]


def backgrounds(n: int = 10, size: int = 28, seed: int = 0) -> np.ndarray:
    """`n` deterministic random textures of `size`×`size` in [0, 1], float32, shape (n, size, size).

    The same (n, size, seed) always gives the same array; see the module docstring for the generator.
    Background k depends only on (seed, k), so the first backgrounds of a larger n are the same.
    """
    out = np.empty((n, size, size), np.float32)
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        p, noise_seed = _draw(rng)
        noise = gaussian_filter(np.random.default_rng(noise_seed).standard_normal((size, size)), p["sigma"],
                                mode="wrap")
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)  # (size, size) each
        along = xx * np.cos(p["theta"]) + yy * np.sin(p["theta"])
        grating = 0.5 + 0.5 * np.cos(2 * np.pi * p["freq"] * along / size + p["phase"])
        out[k] = _unit_range(p["mix"] * grating + (1 - p["mix"]) * _unit_range(noise))
    return out


def background_indices(n_images: int, n_backgrounds: int = 10, seed: int = 0) -> torch.Tensor:
    """Which background each of `n_images` images gets: int64 (n_images,), uniform and seeded."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_backgrounds, (n_images,), generator=gen)


def composite(digits: torch.Tensor, backgrounds: np.ndarray | torch.Tensor, idx: torch.Tensor,
              alpha: float = 0.5) -> torch.Tensor:
    """Digits over backgrounds, the digit's ink as opacity: `x + (1 − x)·α·bg[idx]`.

    Args:
        digits: images in [0, 1], (N, C, H, W).
        backgrounds: textures in [0, 1], (n, H, W), as from `backgrounds`.
        idx: the background of each image, int (N,).
        alpha: brightness of the background where there is no ink, in [0, 1].

    Returns:
        (N, C, H, W) images in [0, 1], same dtype and device as `digits`.
    """
    bg = torch.as_tensor(backgrounds, dtype=digits.dtype, device=digits.device)
    if bg.ndim != 3 or bg.shape[1:] != digits.shape[2:]:
        raise ValueError(f"backgrounds of shape (n, {digits.shape[2]}, {digits.shape[3]}) are needed for digits "
                         f"of shape {tuple(digits.shape)}, got {tuple(bg.shape)}")
    if len(idx) != len(digits):
        raise ValueError(f"one background index per image is needed: {len(idx)} indices for {len(digits)} images")
    under = bg[idx.to(digits.device)].unsqueeze(1)  # (N, 1, H, W), broadcast over channels
    return digits + (1 - digits) * alpha * under


def _draw(rng: np.random.Generator) -> tuple[dict[str, Any], int]:
    """One background's parameters, and a seed for its noise field, from `rng`."""
    params = {
        "sigma": float(rng.uniform(*SIGMA_RANGE)),
        "freq": float(rng.uniform(*FREQ_RANGE)),
        "theta": float(rng.uniform(0, np.pi)),
        "phase": float(rng.uniform(0, 2 * np.pi)),
        "mix": float(rng.uniform(*MIX_RANGE)),
    }
    return params, int(rng.integers(2**31))


def _unit_range(a: np.ndarray) -> np.ndarray:
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


__all__ = ["background_indices", "background_params", "backgrounds", "composite", "invert"]
