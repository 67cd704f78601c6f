"""Linear collapse: a network without nonlinear activations is one affine map, however deep.

Convolution, average pooling, flattening and fully connected layers are all affine, and a
composition of affine maps is affine: f(x) = A·vec(x) + b (Kuo 2016's argument for why a CNN needs
its activations; docs/REFERENCE.md §3 "linear collapse"). `affine_map` recovers A and b from the network
itself: b = f(0), and column j of A is f(e_j) − b for the j-th basis image e_j, pushed through the
network in batches. `affine_map` then checks the map on a few random inputs and refuses a network with
a hidden nonlinearity (max pooling, a ReLU) instead of silently returning a map that is wrong by more
than the outputs themselves. The map is taken in eval mode, where BatchNorm and dropout are affine.

Example:
    >>> model = create_model("lenet5", activation="none", pool="avg")
    >>> A, b = affine_map(model, (1, 28, 28))        # A: (10, 784), b: (10,)
    >>> torch.allclose(model(x), x.flatten(1) @ A.T + b, atol=1e-5)
    True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from convscope.errors import UserError
from convscope.hooks import eval_mode, model_device


@torch.no_grad()
def affine_map(model: nn.Module, input_shape: tuple[int, ...], batch_size: int = 1024,
               dtype: torch.dtype = torch.float64, check: bool = True,
               rtol: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The (A, b) with model(x) = A·vec(x) + b for a model that is affine (in eval mode).

    Computed in `dtype` on a copy of the model, so the user's model keeps its dtype and modes.

    Args:
        model: the network.
        input_shape: one input's shape, e.g. `(1, 28, 28)`.
        batch_size: basis images per forward pass.
        dtype: the precision of the copy the map is computed on.
        check: refuse a model that is not affine: before the map is built, f(x₀ + x₁) against
            f(x₀) + f(x₁) − f(0) and f(−x₂) against 2f(0) − f(x₂); after, model(x) against A·vec(x) + b on
            four inputs; all seeded standard-normal, each within `rtol` of the output scale. `check=False`
            for callers that check themselves (`max_affine_error`).
        rtol: that tolerance, relative to the output scale; default √ε of `dtype` (1.5e-8 in float64),
            far above rounding and far below what any ReLU or max pooling does.

    Returns:
        A of shape (outputs, prod(input_shape)) and b of shape (outputs,), on the model's device.

    Raises:
        UserError: `check` is on and the model is not affine.
    """
    device = model_device(model)
    net = _copy_as(model, dtype)
    n = math.prod(input_shape)
    rtol = torch.finfo(dtype).eps ** 0.5 if rtol is None else rtol
    # A seeded generator of its own: the global random state is the user's.
    x = torch.randn(4, *input_shape, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
    with eval_mode(net):
        b = net(torch.zeros(1, *input_shape, dtype=dtype, device=device)).flatten(1)[0]
        if check:  # superposition first: a few passes refuse a nonlinear net before the n passes of the map
            f = net(torch.cat((x[:3], x[:1] + x[1:2], -x[2:3]))).flatten(1)  # f(x0), f(x1), f(x2), f(x0+x1), f(−x2)
            _refuse_unless_close(net, f[3:], torch.stack((f[0] + f[1] - b, 2 * b - f[2])), b, rtol)
        cols = []
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n), device=device)
            basis = torch.zeros(len(idx), n, dtype=dtype, device=device)
            basis[torch.arange(len(idx)), idx] = 1.0
            cols.append(net(basis.view(-1, *input_shape)).flatten(1) - b)  # (batch, outputs)
        A = torch.cat(cols).T.contiguous()  # (outputs, n)
        if check:
            _refuse_unless_close(net, net(x).flatten(1), x.flatten(1) @ A.T + b, b, rtol)
    return A, b


def _refuse_unless_close(net: nn.Module, out: torch.Tensor, pred: torch.Tensor, b: torch.Tensor,
                         rtol: float) -> None:
    """Raise unless max |out − pred| is within `rtol` of the outputs' scale."""
    err = float((out - pred).abs().max())
    scale = max(float(out.abs().max()), float(pred.abs().max()), float(b.abs().max()), torch.finfo(b.dtype).tiny)
    if not err <= rtol * scale:  # also catches NaN
        raise UserError(f"{type(net).__name__} is not affine: on random inputs its outputs differ from an affine "
                        f"map's by {err:.3g}, against outputs of size {scale:.3g}; remove its nonlinearities "
                        "(activations, max pooling), or pass check=False and measure the error with max_affine_error.")


@torch.no_grad()
def max_affine_error(model: nn.Module, A: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> float:
    """Largest |model(x) − (A·vec(x) + b)| over a batch x, computed in the model's own dtype."""
    x = x.to(model_device(model))
    with eval_mode(model):
        out = model(x).flatten(1)
    pred = x.flatten(1).to(A.dtype) @ A.T + b
    return float((out.to(A.dtype) - pred).abs().max())


def _copy_as(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(dtype)


__all__ = ["affine_map", "max_affine_error"]
