"""Reconstructing a conv layer's input from its CReLU features (Shang et al., ICML 2016, §2.2).

CReLU keeps both phases of every response, so the linear response survives: with
f = CReLU(Wᵀx) = [ρ(Wᵀx), ρ(−Wᵀx)], the difference of the two halves gives z = f⁺ − f⁻ = Wᵀx exactly
(Prop. 2.1), and x′ = (Wᵀ)⁺ z recovers the part of x in the span of the shifted filters — all of x
when they span the input space. Here Wᵀ is the convolution itself (every filter at every position);
its pseudo-inverse is applied by solving the least-squares problem min_x ‖M ⊙ (conv(x) − z)‖² with
conjugate gradients on the normal equations (CGLS), the adjoint being the transposed convolution.

With max pooling after CReLU (Algorithm 1), each half is pooled on its own; unpooling with the
recorded switches puts each maximum back where it came from. A switch holding a positive value
fixes the response there (+value from the positive half, −value from the negative half); every
other position is unknown, so the mask M keeps only those positions and the solve uses just the
filters that survived pooling. That is our reading of the paper's algorithm; the paper's measured
ratios ‖x − x′‖/‖x‖ are in docs/REFERENCE.md §4.

Example:
    >>> x_rec = reconstruct(conv, x)                 # no pooling: exact when the filters span
    >>> x_rec = reconstruct(conv, x, pool=nn.MaxPool2d(3, 2, padding=1))
    >>> ratio = relative_error(x, x_rec)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input


@torch.no_grad()
def crelu_features(conv: nn.Conv2d, x: torch.Tensor, pool: nn.MaxPool2d | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear response z = Wᵀx (no bias) recovered from CReLU features, and the mask of known entries.

    Without pooling every entry is known. With `pool`, the positive and negative halves are pooled
    separately, unpooled with their switches, and only positions whose switch carried a positive
    value are known.
    """
    w = conv.weight.detach().double()  # float64 throughout; the user's module is not converted
    bias = conv.bias.detach().double().view(1, -1, 1, 1) if conv.bias is not None else None
    y = _conv(conv, x, w) + (bias if bias is not None else 0)
    pos, neg = F.relu(y), F.relu(-y)  # the two halves of CReLU(y)
    if pool is None:
        z, mask = pos - neg, torch.ones_like(y, dtype=torch.bool)
    else:
        k, s, p = pool.kernel_size, pool.stride, pool.padding
        up_pos = _pool_unpool(pos, k, s, p)
        up_neg = _pool_unpool(neg, k, s, p)
        mask = (up_pos > 0) | (up_neg > 0)
        z = up_pos - up_neg
    if bias is not None:  # back to the linear response Wᵀx
        z = torch.where(mask, z - bias, z)
    return z, mask


@torch.no_grad()
def reconstruct(conv: nn.Conv2d, x: torch.Tensor, pool: nn.MaxPool2d | None = None, iters: int = 1000,
                tol: float = 1e-24) -> torch.Tensor:
    """x′ = (Wᵀ)⁺ z from the CReLU (and optionally max-pooled) features of `x`, in float64.

    Args:
        conv: the convolution before CReLU (its bias is removed from the response first).
        x: `(B, C, H, W)` input of that convolution.
        pool: the max pooling after CReLU, or None.
        iters: CGLS iterations at most; tol: stop when ‖normal residual‖² falls below tol·its start.

    Returns:
        The reconstruction, shape of `x`, dtype of `x`.
    """
    w = conv.weight.detach().double()
    z, mask = crelu_features(conv, x, pool)
    z, m = z.double(), mask.double()
    shape = tuple(x.shape)

    def A(v: torch.Tensor) -> torch.Tensor:
        return m * _conv(conv, v, w)

    def At(r: torch.Tensor) -> torch.Tensor:
        return conv2d_input(shape, w, m * r, conv.stride, conv.padding, conv.dilation, conv.groups)

    # CGLS (Hestenes–Stiefel on the normal equations), batched: one step length per image.
    sol = torch.zeros(shape, dtype=torch.float64, device=x.device)
    r = m * z
    s = At(r)
    p = s.clone()
    gamma = _sq(s)
    start = gamma.clone()
    for _ in range(iters):
        q = A(p)
        alpha = gamma / _sq(q).clamp_min(1e-300)
        sol += alpha.view(-1, 1, 1, 1) * p
        r -= alpha.view(-1, 1, 1, 1) * q
        s = At(r)
        new = _sq(s)
        if bool((new <= tol * start).all()):
            break
        p = s + (new / gamma.clamp_min(1e-300)).view(-1, 1, 1, 1) * p
        gamma = new
    return sol.to(x.dtype)


def relative_error(x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    """‖x − x′‖ / ‖x‖ per image."""
    x, x_rec = x.flatten(1).double(), x_rec.flatten(1).double()
    return (x - x_rec).norm(dim=1) / x.norm(dim=1).clamp_min(1e-300)


def _conv(conv: nn.Conv2d, v: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    w = conv.weight if w is None else w
    return F.conv2d(v.to(w.dtype), w, None, conv.stride, conv.padding, conv.dilation, conv.groups)


def _pool_unpool(t: torch.Tensor, k, s, p) -> torch.Tensor:
    pooled, idx = F.max_pool2d(t, k, s, p, return_indices=True)
    return F.max_unpool2d(pooled, idx, k, s, p, output_size=t.shape[-2:])


def _sq(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).pow(2).sum(dim=1)


__all__ = ["crelu_features", "reconstruct", "relative_error"]
