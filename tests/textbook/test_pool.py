"""Max and mean pooling: hand-worked routing, ties, autograd and finite differences (docs/REFERENCE.md §1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope.textbook import AvgPool2d, MaxPool2d

FEW = settings(deadline=None, max_examples=25)


def test_max_pool_routes_to_the_arg_max_by_hand() -> None:
    x = np.array([[1.0, 5, 2, 0],
                  [3, 4, 8, 1],
                  [0, 0, 7, 6],
                  [9, 2, 6, 7]])[None, None]  # fmt: skip
    pool = MaxPool2d(2)
    assert pool.forward(x)[0, 0].tolist() == [[5, 8], [9, 7]]
    dx = pool.backward(np.array([[10.0, 20], [30, 40]])[None, None])
    assert dx[0, 0].tolist() == [[0, 10, 0, 0],
                                 [0, 0, 20, 0],
                                 [0, 0, 40, 0],
                                 [30, 0, 0, 0]]  # fmt: skip


def test_max_pool_ties_go_to_the_first_maximum_in_reading_order_like_torch() -> None:
    x = np.array([[2.0, 2, 0, 1],
                  [2, 2, 1, 0],
                  [0, 0, 3, 1],
                  [0, 0, 1, 3]])[None, None]  # fmt: skip
    pool = MaxPool2d(2)
    dx = pool.backward(pool.forward(x) * 0 + 1)
    assert dx[0, 0].tolist() == [[1, 0, 0, 1],  # four 2s: the top-left; 1 over 0 1 / 1 0: the top-right
                                 [0, 0, 0, 0],
                                 [1, 0, 1, 0],  # all zeros: the top-left; two 3s: the top-left
                                 [0, 0, 0, 0]]  # fmt: skip
    xt = torch.from_numpy(x).requires_grad_()
    F.max_pool2d(xt, 2).sum().backward()
    np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_mean_pool_spreads_evenly_by_hand() -> None:
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    pool = AvgPool2d(2)
    assert pool.forward(x)[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    dx = pool.backward(np.array([[4.0, 8], [12, 16]])[None, None])
    assert dx[0, 0].tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_overlapping_windows_accumulate() -> None:
    x = np.array([[0.0, 1, 0], [0, 0, 0], [0, 0, 0]])[None, None]  # the 1 lies in both 2×2 windows of row 0
    pool = MaxPool2d(2, stride=1)
    pool.forward(x)
    assert pool.backward(np.ones((1, 1, 2, 2)))[0, 0, 0, 1] == 2  # two windows chose it
    mean = AvgPool2d(2, stride=1)
    mean.forward(x)
    assert mean.backward(np.ones((1, 1, 2, 2)))[0, 0].tolist() == [[0.25, 0.5, 0.25], [0.5, 1, 0.5],
                                                                   [0.25, 0.5, 0.25]]  # fmt: skip


@given(N=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(2, 11), W=st.integers(2, 11), K=st.integers(1, 4),
       S=st.integers(1, 4), seed=st.integers(0, 2**16))
@FEW
def test_pooling_against_autograd(N: int, C: int, H: int, W: int, K: int, S: int, seed: int) -> None:
    if min(H, W) < K:
        return
    rng = np.random.default_rng(seed)
    x, stride = rng.standard_normal((N, C, H, W)), min(S, K)  # torch needs stride ≤ kernel without padding gaps
    for layer, fn in ((MaxPool2d(K, stride), F.max_pool2d), (AvgPool2d(K, stride), F.avg_pool2d)):
        xt = torch.from_numpy(x).requires_grad_()
        yt = fn(xt, K, stride)
        y = layer.forward(x)
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
        dy = rng.standard_normal(y.shape)
        yt.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("layer", [MaxPool2d(2), MaxPool2d(3, 2), AvgPool2d(2), AvgPool2d(3, 2)], ids=repr)
def test_pooling_finite_differences(layer) -> None:
    rng = np.random.default_rng(0)
    x = rng.permutation(2 * 2 * 7 * 7).reshape(2, 2, 7, 7) / 10.0  # distinct values: no ties near x ± eps
    r = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(r)
    num, eps = np.zeros_like(x), 1e-6
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = (layer.forward(x) * r).sum()
        x[i] = old - eps
        down = (layer.forward(x) * r).sum()
        x[i] = old
        num[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(dx, num, atol=1e-6)


def test_pooling_keeps_float32_and_checks_order() -> None:
    x = np.ones((2, 3, 8, 8), np.float32)
    for layer in (MaxPool2d(2), AvgPool2d(2)):
        assert layer.forward(x).dtype == np.float32
        assert layer.backward(np.ones((2, 3, 4, 4), np.float32)).dtype == np.float32
    with pytest.raises(RuntimeError, match="before forward"):
        MaxPool2d(2).backward(np.ones((1, 1, 1, 1)))
