"""The edge-survival measure of `analysis.pooling` on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.analysis.kernels import planted_conv, sobel_x, sobel_y
from convscope.analysis.pooling import correlation, edge_survival, pool2d, pooled_examples
from convscope.errors import UnknownNameError


def step_edge(n: int = 4, size: int = 16) -> np.ndarray:
    """`n` images, dark left half, bright right half, the edge at a different column in each."""
    imgs = np.zeros((n, size, size), np.float32)
    for i in range(n):
        imgs[i, :, size // 4 + i:] = 1.0
    return imgs


def test_a_clean_edge_survives_noise_free_pooling_exactly():
    conv = planted_conv([sobel_x(), sobel_y()], padding=0)
    for pool in ("max", "avg"):
        assert edge_survival(step_edge(), conv, [0.0], pool) == pytest.approx([1.0], abs=1e-12)


def test_survival_falls_with_noise():
    conv = planted_conv([sobel_x(), sobel_y()], padding=0)
    for pool in ("max", "avg"):
        s = edge_survival(step_edge(size=32), conv, [0.0, 0.1, 0.5, 2.0], pool, repeats=3)
        assert s[0] == pytest.approx(1.0) and np.all(np.diff(s) < 0) and s[-1] < 0.5


def test_hand_worked_correlation_after_max_and_average_pooling():
    # A 4×4 map with a vertical line in column 1; the noisy one has one extra spike at (3, 3).
    clean = torch.zeros(1, 1, 4, 4)
    clean[..., 1] = 1.0
    noisy = clean.clone()
    noisy[..., 3, 3] = 1.0
    # Max pooling 2×2: clean [[1, 0], [1, 0]], noisy [[1, 0], [1, 1]]: corr of (1,0,1,0) and (1,0,1,1).
    assert float(correlation(pool2d(noisy, "max"), pool2d(clean, "max"))) == pytest.approx(1 / np.sqrt(3))
    # Average pooling: clean (.5, 0, .5, 0), noisy (.5, 0, .5, .25).
    a, b = np.array([0.5, 0, 0.5, 0.25]), np.array([0.5, 0, 0.5, 0])
    want = np.corrcoef(a, b)[0, 1]
    assert float(correlation(pool2d(noisy, "avg"), pool2d(clean, "avg"))) == pytest.approx(want)
    assert want > 1 / np.sqrt(3)  # the spike weighs less after averaging


def test_correlation_of_a_constant_map_is_nan_and_bad_pool_names_raise():
    assert torch.isnan(correlation(torch.zeros(1, 4), torch.rand(1, 4))).all()
    with pytest.raises(UnknownNameError):
        pool2d(torch.zeros(1, 1, 4, 4), "median")


def test_pooled_examples_shapes():
    conv = planted_conv([sobel_x(), sobel_y()], padding=0)
    maps = pooled_examples(step_edge(1, 18)[0], conv, sigma=0.1)
    assert maps["noisy"].shape == (18, 18) and maps["clean_edges"].shape == (16, 16)
    assert maps["clean_max"].shape == maps["noisy_avg"].shape == (8, 8)
