"""Inversion: the image whose representation at a layer matches that of a given image.

Mahendran and Vedaldi ("Understanding Deep Image Representations by Inverting Them", CVPR 2015, docs/REFERENCE.md
§6) reconstruct an image from its code Φ₀ = Φ(x₀) at one layer by

    x* = argmin_x ‖Φ(x) − Φ₀‖² / ‖Φ₀‖² + λ_α N_α(x) + λ_TV N_TV(x),

    N_α(x) = Σ |x − c|^α / (H·W·B^α),   N_TV(x) = Σ ((Δx)² + (Δy)²)^(β/2) / (H·W·V^β),   V = B / 6.5,

with α = 6, β = 2: the α-norm keeps pixels within the typical range c ± B of images (c the middle of the pixel
range, B half its width), total variation keeps the image piecewise smooth; dividing by the number of pixels and the
typical sizes makes each term about 1 for a natural image, so the λ mean the same at every image size. Their
reference code starts from noise and takes heavy-ball steps (momentum 0.9), the learning rate ×1 for the first
quarter of the steps, ×0.1 for the next half and ×0.01 for the last quarter, and jitters the image by a few pixels
at each step (here by default 4 pixels per 224, rounded: none at 28×28, where one pixel is a large shift); λ_TV
grows with depth (deeper codes say less about the pixels).

The step is `lr · H·W·B²`: the data term is divided by ‖Φ₀‖², which for a network close to positively homogeneous
grows like ‖x₀‖² ≈ H·W·B², so its gradient per pixel shrinks like 1/(H·W·B²) at any layer, and so do the normalised
regularisers'. With this scale one dimensionless `lr` suits every layer and image size (our choice; the paper tunes
its rate by hand).

Every image of the batch is an independent reconstruction (the loss is a sum of per-image terms and the update is
elementwise), and several layers are inverted at once by stacking one copy of the batch per layer
(`invert_layers`); each image starts from the same noise and sees the same jitter whether it is inverted alone or
with others. Random draws come from a `torch.Generator` seeded by `seed` on the CPU (the global random state is
untouched); the device and dtype are the model's; the model is left as found (`hooks.frozen`, `hooks.record`).

Example:
    >>> inv = invert(model, x[:4], "features.conv2", steps=200)
    >>> inv.images.shape, inv.errors.shape           # the reconstructions and ‖Φ(x*) − Φ₀‖ / ‖Φ₀‖ of each
    (torch.Size([4, 1, 28, 28]), (4,))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convscope.errors import InputShapeError, UserError
from convscope.hooks import eval_mode, frozen, get_layer, model_device, model_dtype, record
from convscope.optvis.objectives import alpha_norm, total_variation
from convscope.optvis.render import _check_positive
from convscope.optvis.transforms import jitter as jitter_transform

Tensor = torch.Tensor
TV_RATIO = 6.5  # V = B / 6.5, the paper's typical variation between neighbouring pixels


@dataclass
class InversionResult:
    """The reconstructions of one layer's codes.

    `errors` and `start_errors` are ‖Φ(x) − Φ₀‖ / ‖Φ₀‖ of each image, `(B,)`, for the final and starting images as
    they are (no jitter); `history` is the objective of each image at each step, `(steps, B)`.
    """

    layer: str
    images: Tensor  # (B, C, H, W), detached, on the model's device, in its dtype
    start_images: Tensor
    errors: np.ndarray  # (B,)
    start_errors: np.ndarray  # (B,)
    history: np.ndarray  # (steps, B)
    lr: float = 0.0  # the learning rate it ran at (smaller than asked where the asked one diverged)

    @property
    def error(self) -> float:
        """The mean normalised reconstruction error over the batch."""
        return float(self.errors.mean())


RETRIES = 3  # times a layer whose inversion diverged runs again, at a fifth of the rate each time


def lr_schedule(step: int, steps: int) -> float:
    """The reference code's factor of the learning rate at `step` of `steps`: 1, then 0.1, then 0.01 (¼, ½, ¼)."""
    return 1.0 if step < steps // 4 else 0.1 if step < (3 * steps) // 4 else 0.01


def _codes(model: nn.Module, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
    with torch.no_grad(), eval_mode(model), record(model, list(layers)) as acts:
        model(x)
    return dict(acts)


def _relative_error(code: Tensor, target: Tensor) -> Tensor:
    """‖code − target‖ / ‖target‖ per image, `(B,)` (a zero target counts as norm 1e-12)."""
    diff = (code - target).flatten(1).norm(dim=1)
    return diff / target.flatten(1).norm(dim=1).clamp_min(1e-12)


def invert_layers(model: nn.Module, x: Tensor, layers: Sequence[str], steps: int = 400, lr: float = 0.02,
                  momentum: float = 0.9, alpha: float = 6.0, beta: float = 2.0, lambda_alpha: float = 1e-3,
                  lambda_tv: float | Sequence[float] = 0.005, value_range: tuple[float, float] = (0.0, 1.0),
                  jitter: int | None = None, noise: float = 0.1, seed: int = 0) -> dict[str, InversionResult]:
    """Invert the codes of `x` at each of `layers`, all in one batch of `len(layers) · B` images.

    Args:
        model: any module; left exactly as found.
        x: the images whose codes are inverted, `(B, C, H, W)`.
        layers: dotted layer names, e.g. `["features.conv1", "features.pool2"]`.
        steps: heavy-ball steps (the paper: 400).
        lr: the base learning rate, in units of H·W·B² (see the module docstring).
        momentum: heavy-ball momentum (the paper: 0.9).
        alpha, beta: exponents of the α-norm and of total variation (the paper: 6 and 2).
        lambda_alpha: weight of the normalised α-norm.
        lambda_tv: weight of the normalised total variation, one for all layers or one per layer.
        value_range: the pixel range of the model's images; its middle is c and half its width B.
        jitter: the image is shifted by up to this many pixels at each step (0: none; None: 4 per 224 pixels).
        noise: the start is c + noise · B · N(0, 1), drawn from `seed`.
        seed: seed of the start and of the jitter.

    Returns:
        `{layer: InversionResult}`, in the order of `layers`.

    Raises:
        UserError: an unknown layer, a non-positive `steps` or `lr`, a λ list of the wrong length, `x` not 4-D, or
            a layer whose run diverged at `lr` and at `RETRIES` smaller rates. (A layer that diverges at `lr` runs
            again from the same start at a fifth of it, and its result says the rate it ran at: a BatchNorm or
            residual network's deep codes can be steeper than Mahendran and Vedaldi's step expects.)
    """
    _check_positive("steps", steps, True, "400 (Mahendran and Vedaldi's)")
    _check_positive("lr", lr, False, "0.02")
    layers = list(layers)
    if not layers:
        raise UserError("No layers were given: name at least one, e.g. invert_layers(model, x, ['features.conv1']).")
    for n in layers:
        get_layer(model, n)  # an unknown name raises, suggesting close ones
    tvs = [float(lambda_tv)] * len(layers) if isinstance(lambda_tv, int | float) else [float(v) for v in lambda_tv]
    if len(tvs) != len(layers):
        raise UserError(f"{len(tvs)} values of lambda_tv for {len(layers)} layers: give one number or one per layer.")
    if x.ndim != 4:
        raise InputShapeError(f"x has shape {tuple(x.shape)}: give a batch of images (B, C, H, W).")
    lo, hi = value_range
    if not hi > lo:
        raise UserError(f"value_range {value_range} is empty: give (low, high) with low < high, e.g. (0.0, 1.0).")
    out: dict[str, InversionResult] = {}
    diverged = layers
    for rate in (lr / 5**i for i in range(1 + RETRIES)):  # only the layers that diverged run again, same start
        out.update(_optimise(model, x, diverged, [tvs[layers.index(n)] for n in diverged], steps, rate, momentum,
                             alpha, beta, lambda_alpha, value_range, jitter, noise, seed))
        diverged = [n for n in diverged if not torch.isfinite(out[n].images).all()]
        if not diverged:
            return out
    raise UserError(f"The inversion of {', '.join(diverged)} diverged (pixels became infinite) at lr={lr:g} and at "
                    f"{RETRIES} smaller rates down to {rate:g}: use a smaller lr, e.g. {rate / 5:g}.")


def _optimise(model: nn.Module, x: Tensor, layers: list[str], tvs: list[float], steps: int, lr: float,
              momentum: float, alpha: float, beta: float, lambda_alpha: float, value_range: tuple[float, float],
              jitter: int | None, noise: float, seed: int) -> dict[str, InversionResult]:
    """One run of `invert_layers` at `lr`; a layer whose run diverged gets non-finite images."""
    lo, hi = value_range
    centre, bound = (lo + hi) / 2, (hi - lo) / 2
    device, dtype = model_device(model), model_dtype(model)
    x = x.detach().to(device, dtype)
    B, L = len(x), len(layers)
    h, w = x.shape[-2:]
    targets = _codes(model, x, layers)  # {layer: (B, ...)}
    norms = {n: t.flatten(1).pow(2).sum(1).clamp_min(1e-12) for n, t in targets.items()}  # ‖Φ₀‖², (B,)
    gen = torch.Generator().manual_seed(seed)
    start = centre + noise * bound * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    image = start.to(device, dtype).repeat(L, 1, 1, 1).requires_grad_(True)  # (L·B, C, H, W): copy l is layer l
    velocity = torch.zeros_like(image)
    weight_tv = torch.tensor(tvs, device=device, dtype=dtype).repeat_interleave(B)  # (L·B,)
    norm_alpha = lambda_alpha / (h * w * bound**alpha)
    norm_tv = 1.0 / (h * w * (bound / TV_RATIO) ** beta)
    shift = jitter_transform(round(4 * max(h, w) / 224) if jitter is None else jitter)
    reg_alpha, reg_tv = alpha_norm(alpha, centre), total_variation(beta)
    scale = lr * h * w * bound**2
    history = []
    with frozen(model), record(model, layers, detach=False) as acts:
        for step in range(steps):
            model(shift(image, gen))
            data = torch.cat([(acts[n][i * B:(i + 1) * B] - targets[n]).flatten(1).pow(2).sum(1) / norms[n]
                              for i, n in enumerate(layers)])  # (L·B,)
            loss = data + norm_alpha * reg_alpha({}, image) + weight_tv * norm_tv * reg_tv({}, image)
            (grad,) = torch.autograd.grad(loss.sum(), image)
            with torch.no_grad():  # heavy ball: v ← μv − η g, x ← x + v
                velocity.mul_(momentum).sub_(scale * lr_schedule(step, steps) * grad)
                image.add_(velocity)
            history.append(loss.detach())
    final = image.detach().clone()
    with torch.no_grad():
        reached = _codes(model, final, layers)
        begun = _codes(model, start.to(device, dtype).repeat(L, 1, 1, 1), layers)
    runs = torch.stack(history).cpu().numpy()  # (steps, L·B)
    out = {}
    for i, n in enumerate(layers):
        part = slice(i * B, (i + 1) * B)
        out[n] = InversionResult(
            layer=n, images=final[part], start_images=start.to(device, dtype),
            errors=_relative_error(reached[n][part], targets[n]).cpu().numpy(),
            start_errors=_relative_error(begun[n][part], targets[n]).cpu().numpy(), history=runs[:, part], lr=lr)
    return out


def invert(model: nn.Module, x: Tensor, layer: str, steps: int = 400, **options: float) -> InversionResult:
    """Invert the codes of the images `x` at `layer` (Mahendran and Vedaldi 2015); options as `invert_layers`.

    Example:
        >>> inv = invert(model, x[:4], "features.conv1", steps=400)
        >>> inv.error < inv.start_errors.mean()
        True
    """
    return invert_layers(model, x, [layer], steps=steps, **options)[layer]


__all__ = ["InversionResult", "invert", "invert_layers", "lr_schedule"]
