"""Transformation robustness: random small changes to the image before each step of the optimisation.

Olah, Mordvintsev and Schubert ("Feature Visualization", Distill 2017, section "Transformation robustness")
optimise the objective on a randomly padded, jittered, scaled and rotated copy of the image, so that only
patterns that survive such changes are kept and high-frequency tricks are not. Lucid/Lucent's
`standard_transforms` (`lucent/optvis/transform.py`, docs/REFERENCE.md §11) are pad 12 (constant 0.5), jitter 8,
scale 1 + (i − 5)/50 for i in 0..10, rotation −10..10° (with 5 extra chances of 0°), jitter 4, for 224×224 images.

A transform is `fn(x, gen) -> x`: every random draw comes from the `torch.Generator` it is handed, on the CPU, so
a rendering is reproducible from its seed, independent of the device, and the global random state is untouched.
One draw serves the whole batch (every image is shifted, scaled, rotated alike), so rendering a batch of images
gives each the same transformations as rendering it alone with the same seed.

Differences from Lucent, on purpose: `jitter(d)` shifts by a whole number of pixels in [−d, d] (Lucent: [0, d))
with the edge pixels repeated; `random_scale` and `random_rotate` resample about the centre at the same size
(bilinear, edges repeated) instead of changing it; `crop` brings a padded image back to the model's input size,
which models with a fixed-size classifier need.

Example:
    >>> t = compose(pad(2), jitter(1), random_scale(SCALES), random_rotate(ANGLES), jitter(1), crop(28, 28))
    >>> t(torch.rand(4, 1, 28, 28), torch.Generator().manual_seed(0)).shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
Transform = Callable[[Tensor, torch.Generator], Tensor]

SCALES = tuple(1 + (i - 5) / 50 for i in range(11))  # Lucid's random_scale choices: 0.9 .. 1.1
ANGLES = tuple(range(-10, 11)) + (0,) * 5  # degrees; Lucid's random_rotate choices


def _choice(options: Sequence[float], gen: torch.Generator) -> float:
    return float(options[int(torch.randint(len(options), (1,), generator=gen))])


def pad(width: int, value: float = 0.5) -> Transform:
    """Pad each side by `width` pixels of the constant `value` (mid grey): the image grows by 2·width."""
    return lambda x, _gen: F.pad(x, (width,) * 4, value=value) if width > 0 else x


def jitter(d: int) -> Transform:
    """Shift the image by a random whole (dy, dx) in [−d, d]², edge pixels repeated, size kept."""

    def fn(x: Tensor, gen: torch.Generator) -> Tensor:
        if d <= 0:
            return x
        dy, dx = (int(v) for v in torch.randint(-d, d + 1, (2,), generator=gen))
        h, w = x.shape[-2:]
        padded = F.pad(x, (d, d, d, d), mode="replicate")  # (B, C, H+2d, W+2d)
        return padded[..., d + dy:d + dy + h, d + dx:d + dx + w]

    return fn


def affine(x: Tensor, scale: float = 1.0, degrees: float = 0.0) -> Tensor:
    """`x` zoomed by `scale` and turned by `degrees` about its centre, same size, bilinear, edge pixels
    repeated where the image runs out."""
    if scale == 1.0 and degrees == 0.0:
        return x
    t = math.radians(degrees)
    # affine_grid maps output coordinates to input ones: the inverse turn, shrunk by the zoom, no shift
    theta = torch.tensor([[math.cos(t), math.sin(t), 0.0], [-math.sin(t), math.cos(t), 0.0]],
                         dtype=x.dtype, device=x.device) / scale
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_scale(scales: Sequence[float] = SCALES) -> Transform:
    """Zoom about the centre by a factor drawn from `scales`, size kept."""
    return lambda x, gen: affine(x, scale=_choice(scales, gen))


def random_rotate(angles: Sequence[float] = ANGLES) -> Transform:
    """Rotate about the centre by an angle in degrees drawn from `angles`, size kept."""
    return lambda x, gen: affine(x, degrees=_choice(angles, gen))


def crop(h: int, w: int) -> Transform:
    """The central h×w of the image (a larger padded image back to the model's input size)."""

    def fn(x: Tensor, _gen: torch.Generator) -> Tensor:
        top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
        if top < 0 or left < 0:
            raise ValueError(f"cannot crop a {x.shape[-2]}×{x.shape[-1]} image to {h}×{w}")
        return x[..., top:top + h, left:left + w]

    return fn


def normalize(mean: Sequence[float], std: Sequence[float]) -> Transform:
    """(x − mean) / std per channel: the last transform for a model that takes normalised images."""

    def fn(x: Tensor, _gen: torch.Generator) -> Tensor:
        m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - m) / s

    return fn


def compose(*transforms: Transform) -> Transform:
    """Apply `transforms` left to right, all drawing from the one generator."""

    def fn(x: Tensor, gen: torch.Generator) -> Tensor:
        for t in transforms:
            x = t(x, gen)
        return x

    return fn


def standard(h: int, w: int) -> Transform:
    """Lucid's standard transforms with pad and jitter scaled from 224 pixels to an h×w image, then `crop(h, w)`.

    At 224×224 they are Lucid's: pad 12, jitter 8, scale, rotate, jitter 4; at 28×28 pad 2, jitter 1, scale,
    rotate, jitter 1 (each at least one pixel).
    """
    k = max(h, w) / 224

    def px(n: int) -> int:
        return max(1, round(n * k))

    return compose(pad(px(12)), jitter(px(8)), random_scale(), random_rotate(), jitter(px(4)), crop(h, w))


__all__ = ["ANGLES", "SCALES", "Transform", "affine", "compose", "crop", "jitter", "normalize", "pad",
           "random_rotate", "random_scale", "standard"]
