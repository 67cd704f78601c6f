"""Gradient methods: saliency, input × gradient, integrated gradients, SmoothGrad and VarGrad.

- Saliency (Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks", ICLR workshop 2014):
  ∂y_c/∂x, optionally its absolute value.
- Input × gradient (Shrikumar et al. 2016): x ⊙ ∂y_c/∂x.
- Integrated gradients (Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017):
  IG(x) = (x − x′) ⊙ ∫₀¹ ∂y_c(x′ + α(x − x′))/∂x dα, approximated by a quadrature over `steps` points
  (Riemann left/right/middle/trapezoid or Gauss–Legendre, as Captum); completeness: the attributions sum
  to y_c(x) − y_c(x′) (`completeness_gap` measures how far off the quadrature is).
- SmoothGrad (Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017): the mean of a method
  over n copies of x with Gaussian noise of σ = `sigma` × (max − min of x); VarGrad (Adebayo et al. 2018)
  is the variance instead of the mean. Wraps any method; seeded, never touching the global random state.

Example:
    >>> sal = Saliency(model).attribute(x, target=3)                      # (B, C, H, W)
    >>> ig = IntegratedGradients(model).attribute(x, 3, steps=64, method="gausslegendre")
    >>> sg = SmoothGrad(Saliency(model), n=50, sigma=0.15, seed=0).attribute(x, 3)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from convscope.errors import UserError
from convscope.explain.base import Attribution, Target, repeat_target
from convscope.hooks import frozen

QUADRATURES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


class Saliency(Attribution):
    """∂y/∂x (`abs=True`: its absolute value, as Simonyan et al. draw it)."""

    name = "saliency"

    def attribute(self, x: Tensor, target: Target, abs: bool = False) -> Tensor:  # noqa: A002
        grad = self.gradient(self.prepare(x), target)
        return grad.abs() if abs else grad


class InputXGradient(Attribution):
    """x ⊙ ∂y/∂x."""

    name = "input_x_gradient"

    def attribute(self, x: Tensor, target: Target) -> Tensor:
        x = self.prepare(x)
        return x * self.gradient(x, target)


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points α in [0, 1] and weights summing to 1 of an integral over [0, 1] (Captum's rules, with the
    trapezoid rule's weights corrected)."""
    if steps < 1 or (method != "gausslegendre" and steps < 2):
        raise UserError(f"steps must be at least {1 if method == 'gausslegendre' else 2} for {method}, not {steps}.")
    n = steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * (nodes + 1), 0.5 * weights
    if method == "riemann_trapezoid":
        # n points 1/(n − 1) apart, the ends weighted by half. (Captum weights them 1/n, which sums to
        # 1 − 1/n and scales its trapezoid attributions by (n − 1)/n, breaking completeness.)
        w = np.full(n, 1 / (n - 1))
        w[[0, -1]] /= 2
        return np.linspace(0, 1, n), w
    if method == "riemann_left":
        return np.linspace(0, 1 - 1 / n, n), np.full(n, 1 / n)
    if method == "riemann_right":
        return np.linspace(1 / n, 1, n), np.full(n, 1 / n)
    if method == "riemann_middle":
        return np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n), np.full(n, 1 / n)
    raise UserError(f"Unknown integration method {method!r}: use one of {', '.join(QUADRATURES)}.")


def _baseline(x: Tensor, baseline: float | Tensor) -> Tensor:
    if isinstance(baseline, (int, float)):
        return torch.full_like(x, float(baseline))
    b = baseline.to(x.device, x.dtype)
    if b.shape == x.shape[1:]:
        b = b.expand_as(x)
    if b.shape != x.shape:
        raise UserError(f"The baseline has shape {tuple(baseline.shape)}; give a number, one image "
                        f"{tuple(x.shape[1:])} or one per example {tuple(x.shape)}.")
    return b


_VALUES_PER_PASS = 2**19  # default input values per forward pass when a method runs many copies of x
_MIN_INPUTS_PER_PASS = 8  # and at least this many inputs


def copies_per_pass(x: Tensor, copies: int, values: int = _VALUES_PER_PASS) -> int:
    """How many copies of the batch `x` (path points, noisy copies) one forward pass takes by default: at least
    8 inputs (smaller batches leave a CPU's threads idle), else about `values` input values (one huge batch is
    slower on CPU, the cache, and bounds memory), at most `copies`."""
    return max(1, min(copies, max(-(-_MIN_INPUTS_PER_PASS // len(x)), values // x.numel())))


class IntegratedGradients(Attribution):
    """Integrated gradients along the straight path from `baseline` to x."""

    name = "integrated_gradients"

    def attribute(self, x: Tensor, target: Target, baseline: float | Tensor = 0.0, steps: int = 50,
                  method: str = "gausslegendre", internal_batch_size: int | None = None) -> Tensor:
        """`internal_batch_size` bounds how many inputs (path points × examples) run through the model at
        once; by default at least 8 inputs per pass (smaller batches leave a CPU's threads idle) and otherwise
        about 2**17 input values, which on CPU is faster than one huge batch (cache) and bounds memory."""
        x = self.prepare(x)
        base = _baseline(x, baseline)
        alphas, weights = quadrature(method, steps)
        B = len(x)
        if internal_batch_size is None:
            per_pass = copies_per_pass(x, steps)  # path points per forward pass
        else:
            per_pass = max(1, internal_batch_size // B)
        total = torch.zeros_like(x)
        with frozen(self.model):
            for start in range(0, steps, per_pass):
                a = torch.as_tensor(alphas[start:start + per_pass], dtype=x.dtype, device=x.device)
                w = torch.as_tensor(weights[start:start + per_pass], dtype=x.dtype, device=x.device)
                k = len(a)
                # (k, B, C, H, W): every path point of every example, flattened into one batch
                path = (base[None] + a.view(k, 1, 1, 1, 1) * (x - base)[None]).reshape(k * B, *x.shape[1:])
                path.requires_grad_(True)
                scores = self.scores(path, repeat_target(target, B, k))
                (grad,) = torch.autograd.grad(scores.sum(), path)
                total += (grad.view(k, B, *x.shape[1:]) * w.view(k, 1, 1, 1, 1)).sum(0)
        return (x - base) * total


def completeness_gap(model: nn.Module, x: Tensor, attributions: Tensor, target: Target,
                     baseline: float | Tensor = 0.0) -> Tensor:
    """Per example, Σ attributions − (y(x) − y(baseline)): 0 for exact integrated gradients (Captum's
    "convergence delta"), so its size says whether `steps` was enough."""
    method = Attribution(model)
    x = method.prepare(x)
    base = _baseline(x, baseline)
    with torch.no_grad(), frozen(model):
        diff = method.scores(x, target) - method.scores(base, target)
    return attributions.to(x.dtype).flatten(1).sum(1) - diff


class SmoothGrad(Attribution):
    """A method averaged over noisy copies of x ("smoothgrad"), its mean square ("smoothgrad_sq"), or its
    variance ("vargrad")."""

    name = "smoothgrad"
    KINDS: ClassVar[tuple[str, ...]] = ("smoothgrad", "smoothgrad_sq", "vargrad")

    def __init__(self, method: Attribution, n: int = 50, sigma: float = 0.15, kind: str = "smoothgrad",
                 absolute_sigma: bool = False, batch: int | None = None, seed: int | torch.Generator = 0) -> None:
        """`sigma` is a fraction of each example's value range (max − min), or the standard deviation itself
        with `absolute_sigma=True`; `batch` bounds the noisy copies per call of `method` (by default a size
        that is fast on CPU, `copies_per_pass`); it never changes the noise each copy gets."""
        if not isinstance(method, Attribution) or method.cam:
            raise UserError("SmoothGrad wraps a method that returns maps of the input's shape, e.g. "
                            "SmoothGrad(Saliency(model)).")
        if kind not in self.KINDS:
            raise UserError(f"Unknown SmoothGrad kind {kind!r}: use {', '.join(self.KINDS)}.")
        if n < 1 or not sigma >= 0:
            raise UserError(f"SmoothGrad needs n ≥ 1 and sigma ≥ 0, not n={n}, sigma={sigma}.")
        super().__init__(method.model)
        self.method, self.n, self.sigma, self.kind = method, n, sigma, kind
        self.absolute_sigma, self.batch, self.seed = absolute_sigma, batch, seed

    def attribute(self, x: Tensor, target: Target, **options: Any) -> Tensor:
        """`options` go to the wrapped method's `attribute`."""
        x = self.prepare(x)
        B = len(x)
        gen = self.seed if isinstance(self.seed, torch.Generator) else torch.Generator().manual_seed(self.seed)
        if self.absolute_sigma:
            std = torch.full((B,), float(self.sigma), dtype=x.dtype)
        else:
            flat = x.flatten(1).cpu()
            std = self.sigma * (flat.max(1).values - flat.min(1).values)
        # SmoothGrad's passes carry no quadrature bookkeeping: measured on a 2-core CPU, passes 8× larger than
        # integrated gradients' are fastest (all 16 copies of 64 MNIST images in one; 2 copies of 4 at 224×224).
        per_call = max(1, min(self.n, self.batch or copies_per_pass(x, self.n, 2 * _VALUES_PER_PASS)))
        total = torch.zeros_like(x)
        total_sq = torch.zeros_like(x)
        # All the noise first, (B, n, C, H, W), example-major as Captum's NoiseTunnel draws it (the n copies of
        # example b adjacent), so the batching changes how the copies are evaluated, never which noise they get.
        std_n = std.repeat_interleave(self.n).view(-1, *[1] * (x.dim() - 1)).expand(B * self.n, *x.shape[1:])
        noise = torch.normal(0.0, std_n.contiguous(), generator=gen).to(x.device).view(B, self.n, *x.shape[1:])
        for start in range(0, self.n, per_call):
            k = min(per_call, self.n - start)
            # (B·k, C, H, W): copies start..start+k of every example, example-major
            noisy = (x[:, None] + noise[:, start:start + k]).reshape(B * k, *x.shape[1:])
            a = self.method.attribute(noisy, repeat_target(target, B, k, interleave=True), **options)
            a = a.view(B, k, *x.shape[1:])
            total += a.sum(1)
            total_sq += (a * a).sum(1)
        mean, mean_sq = total / self.n, total_sq / self.n
        if self.kind == "smoothgrad":
            return mean
        return mean_sq if self.kind == "smoothgrad_sq" else mean_sq - mean * mean


__all__ = ["QUADRATURES", "InputXGradient", "IntegratedGradients", "Saliency", "SmoothGrad", "completeness_gap",
           "quadrature"]
