"""The conv, linear and activation layers, forward and backward, against torch.autograd in float64,
and the conv layer's gradients against the chapter's formulas and finite differences (docs/REFERENCE.md §1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope.textbook import (
    Conv2d,
    Flatten,
    Linear,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
    conv2d,
    corr2d,
    dilate,
    rot180,
)

FEW = settings(deadline=None, max_examples=25)


def t64(a: np.ndarray, grad: bool = True) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(grad)


def conv_layer(D: int, P: int, K: int, S: int, pad: int, seed: int) -> Conv2d:
    return Conv2d(D, P, K, stride=S, padding=pad, rng=np.random.default_rng(seed), dtype=np.float64)


@given(N=st.integers(1, 3), D=st.integers(1, 3), P=st.integers(1, 4), H=st.integers(3, 11), W=st.integers(3, 11),
       K=st.integers(1, 4), S=st.integers(1, 3), pad=st.integers(0, 2), seed=st.integers(0, 2**16))
@FEW
def test_conv_layer_forward_and_backward_against_autograd(N: int, D: int, P: int, H: int, W: int, K: int, S: int,
                                                          pad: int, seed: int) -> None:
    if min(H, W) + 2 * pad < K:
        return
    rng = np.random.default_rng(seed)
    conv = conv_layer(D, P, K, S, pad, seed)
    x = rng.standard_normal((N, D, H, W))
    y = conv.forward(x)
    xt, wt, bt = t64(x), t64(conv.params["weight"]), t64(conv.params["bias"])
    yt = F.conv2d(xt, wt, bt, stride=S, padding=pad)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(conv.grads["weight"], wt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(conv.grads["bias"], bt.grad.numpy(), atol=1e-10)


def test_conv_gradients_are_the_chapters_formulas() -> None:
    """∂f/∂W = ∂f/∂Y ⊗ X, ∂f/∂X = rot180(W) ~⊗ ∂f/∂Y, ∂f/∂b = Σ ∂f/∂Y, written with conv.py's 2-D functions."""
    rng = np.random.default_rng(0)
    D, P, K, S = 2, 3, 3, 2
    conv = conv_layer(D, P, K, S, 0, 1)
    x = rng.standard_normal((1, D, 9, 8))  # (9 − 3)/2 + 1 = 4 rows; (8 − 3)/2 = 2.5: the last column is unused
    dy = rng.standard_normal(conv.forward(x).shape)  # (1, P, 4, 3)
    dx = conv.backward(dy)
    w, dyd = conv.params["weight"], dilate(dy, S)[0]  # dilating undoes the stride
    for p in range(P):
        for d in range(D):
            grad_w = corr2d(x[0, d], dyd[p])[:K, :K]  # the output gradient slid over the input
            np.testing.assert_allclose(conv.grads["weight"][p, d], grad_w, atol=1e-12)
    for d in range(D):
        wide = sum(corr2d(dyd[p], rot180(w[p, d]), mode="wide") for p in range(P))  # rot180(W) ~⊗ ∂f/∂Y
        np.testing.assert_allclose(wide, sum(conv2d(dyd[p], w[p, d], mode="wide") for p in range(P)), atol=1e-12)
        expected = np.zeros((9, 8))
        expected[:wide.shape[0], :wide.shape[1]] = wide  # the floored column gets no gradient
        np.testing.assert_allclose(dx[0, d], expected, atol=1e-12)
    np.testing.assert_allclose(conv.grads["bias"], dy.sum(axis=(0, 2, 3)))


def test_dilate_inserts_zeros() -> None:
    d = dilate(np.array([[1.0, 2], [3, 4]]), 3)
    assert d.shape == (4, 4) and d[0, 3] == 2 and d[3, 0] == 3 and d.sum() == 10


def numeric_grad(f, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() with respect to every entry of `a` (changed in place)."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        up = f()
        a[i] = old - eps
        down = f()
        a[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("S,pad", [(1, 0), (1, 1), (2, 1), (3, 2)])
def test_conv_layer_finite_differences(S: int, pad: int) -> None:
    rng = np.random.default_rng(S * 10 + pad)
    conv = conv_layer(2, 3, 3, S, pad, 5)
    x = rng.standard_normal((2, 2, 7, 6))
    r = rng.standard_normal(conv.forward(x).shape)  # f = Σ r ⊙ Y, so ∂f/∂Y = r

    def f() -> float:
        return float((conv.forward(x) * r).sum())

    conv.forward(x)
    dx = conv.backward(r)
    np.testing.assert_allclose(dx, numeric_grad(f, x), atol=1e-6)
    for name in ("weight", "bias"):
        np.testing.assert_allclose(conv.grads[name], numeric_grad(f, conv.params[name]), atol=1e-6)


def test_conv_layer_parameter_count_and_shapes() -> None:
    conv = Conv2d(6, 16, 5)
    assert sum(p.size for p in conv.params.values()) == 16 * 6 * 5 * 5 + 16  # P·D·K·K + P
    assert conv.forward(np.zeros((2, 6, 14, 14), np.float32)).dtype == np.float32
    conv.needs_input_grad = False
    assert conv.backward(np.ones((2, 16, 10, 10), np.float32)) is None
    with pytest.raises(ValueError, match="6 input channels"):
        conv.forward(np.zeros((1, 3, 14, 14), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        Conv2d(1, 1, 3).backward(np.zeros((1, 1, 1, 1)))


def test_linear_and_flatten_against_autograd() -> None:
    rng = np.random.default_rng(0)
    fc, flat = Linear(12, 5, rng=rng, dtype=np.float64), Flatten()
    x = rng.standard_normal((4, 3, 2, 2))
    y = fc.forward(flat.forward(x))
    xt, wt, bt = t64(x), t64(fc.params["weight"]), t64(fc.params["bias"])
    yt = torch.nn.Flatten()(xt) @ wt.T + bt
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = flat.backward(fc.backward(dy))
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(fc.grads["weight"], wt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(fc.grads["bias"], bt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("layer,fn", [(ReLU, torch.relu), (Tanh, torch.tanh), (Sigmoid, torch.sigmoid)])
def test_activations_against_autograd(layer: type, fn) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)) * 30  # large values check the sigmoid's stability
    x[0, 0, :2] = 0.0  # ReLU's derivative at 0 is 0, as in torch
    act = layer()
    y = act.forward(x)
    xt = t64(x)
    yt = fn(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    dy = rng.standard_normal(x.shape)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(act.backward(dy), xt.grad.numpy(), atol=1e-12)
    assert np.all(np.isfinite(y))


@given(N=st.integers(1, 8), C=st.integers(2, 12), scale=st.floats(0.1, 50), seed=st.integers(0, 2**16))
@FEW
def test_softmax_cross_entropy_against_autograd(N: int, C: int, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    z, labels = rng.standard_normal((N, C)) * scale, rng.integers(0, C, N)
    loss = SoftmaxCrossEntropy()
    value = loss(z, labels)
    zt = t64(z)
    ref = F.cross_entropy(zt, torch.from_numpy(labels))
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(loss.backward(), zt.grad.numpy(), atol=1e-12)
