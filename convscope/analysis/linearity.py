"""Linear collapse: a network without nonlinear activations is one affine map, however deep.

Convolution, average pooling, flattening and fully connected layers are all affine, and a
composition of affine maps is affine: f(x) = A·vec(x) + b (Kuo 2016's argument for why a CNN needs
its activations; docs/REFERENCE.md §3 "linear collapse"). `affine_map` recovers A and b from the network
itself: b = f(0), and column j of A is f(e_j) − b for the j-th basis image e_j, pushed through the
network in batches. `is_affine` checks the result on random inputs, so a network with a hidden
nonlinearity (max pooling, a ReLU) is caught instead of silently collapsed.

Example:
    >>> model = create_model("lenet5", activation="none", pool="avg")
    >>> A, b = affine_map(model, (1, 28, 28))        # A: (10, 784), b: (10,)
    >>> torch.allclose(model(x), x.flatten(1) @ A.T + b, atol=1e-5)
    True
"""

from __future__ import annotations

import torch
from torch import nn

from convscope.hooks import eval_mode


@torch.no_grad()
def affine_map(model: nn.Module, input_shape: tuple[int, ...], batch_size: int = 1024,
               dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """The (A, b) with model(x) = A·vec(x) + b, assuming the model is affine (check with `max_affine_error`).

    Computed in float64 on a copy of the model, so the user's model keeps its dtype and mode.
    Returns A of shape (outputs, prod(input_shape)) and b of shape (outputs,), on the model's device.
    """
    device = next(model.parameters()).device
    net = _copy_as(model, dtype)
    n = 1
    for s in input_shape:
        n *= s
    with eval_mode(net):
        b = net(torch.zeros(1, *input_shape, dtype=dtype, device=device)).flatten(1)[0]
        cols = []
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n), device=device)
            basis = torch.zeros(len(idx), n, dtype=dtype, device=device)
            basis[torch.arange(len(idx)), idx] = 1.0
            cols.append(net(basis.view(-1, *input_shape)).flatten(1) - b)  # (batch, outputs)
    A = torch.cat(cols).T.contiguous()  # (outputs, n)
    return A, b


@torch.no_grad()
def max_affine_error(model: nn.Module, A: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> float:
    """Largest |model(x) − (A·vec(x) + b)| over a batch x, computed in the model's own dtype."""
    device = next(model.parameters()).device
    x = x.to(device)
    with eval_mode(model):
        out = model(x).flatten(1)
    pred = x.flatten(1).to(A.dtype) @ A.T + b
    return float((out.to(A.dtype) - pred).abs().max())


def _copy_as(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(dtype)


__all__ = ["affine_map", "max_affine_error"]
