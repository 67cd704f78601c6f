"""1-D and 2-D convolution and correlation against numpy, scipy.signal and torch (docs/REFERENCE.md §1)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from convscope.textbook import conv1d, conv2d, corr1d, corr2d, mode_padding, output_size, rot180

SCIPY_MODE = {"narrow": "valid", "wide": "full", "same": "same"}
FEW = settings(deadline=None, max_examples=25)


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


# ------------------------------------------------------------------ output_size

def test_output_size_worked_example_narrow_wide_same() -> None:
    # M = 7, K = 3 (docs/REFERENCE.md §1): narrow M−K+1, wide M+K−1, same M.
    assert output_size(7, 3) == 5
    assert output_size(7, 3, padding=2) == 9
    assert output_size(7, 3, padding=1) == 7
    assert output_size(28, 5, padding=2) == 28 and output_size(14, 5) == 10  # LeNet-5's conv1, conv2
    assert output_size(7, 3, stride=2) == 3  # (7 − 3)/2 + 1


@given(M=st.integers(1, 40), K=st.integers(1, 9), S=st.integers(1, 4), P=st.integers(0, 5))
@FEW
def test_output_size_is_the_formula_floored_like_torch(M: int, K: int, S: int, P: int) -> None:
    if M + 2 * P < K:
        with pytest.raises(ValueError, match="longer than the padded input"):
            output_size(M, K, S, P)
        return
    n = output_size(M, K, S, P)
    assert n == (M - K + 2 * P) // S + 1
    assert n == F.conv1d(torch.zeros(1, 1, M), torch.zeros(1, 1, K), stride=S, padding=P).shape[-1]


def test_output_size_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="does not divide"):
        output_size(8, 3, stride=2, exact=True)  # (8 − 3)/2 = 2.5
    assert output_size(8, 3, stride=2) == 3  # floored by default
    assert output_size(9, 3, stride=2, exact=True) == 4
    with pytest.raises(ValueError, match="longer than the padded input"):
        output_size(3, 5)
    with pytest.raises(ValueError, match="stride ≥ 1"):
        output_size(5, 3, stride=0)
    with pytest.raises(ValueError, match="Unknown mode"):
        corr1d(np.ones(4), np.ones(2), mode="valid")
    with pytest.raises(ValueError, match="either padding"):
        corr1d(np.ones(4), np.ones(2), padding=1, mode="wide")
    with pytest.raises(ValueError, match="one-dimensional"):
        conv1d(np.ones((2, 2)), np.ones(2))


def test_mode_padding_even_kernel() -> None:
    assert mode_padding("same", 5) == (2, 2)
    assert mode_padding("same", 4) == (1, 2)  # correlation: the extra zero after, as torch padding="same"
    assert mode_padding("same", 4, flipped=True) == (2, 1)  # convolution: before, as scipy.convolve2d
    assert mode_padding("wide", 4) == (3, 3) and mode_padding("narrow", 4) == (0, 0)


# ------------------------------------------------------------------ 1-D against numpy / scipy

@pytest.mark.parametrize("mode", ["narrow", "wide", "same"])
@pytest.mark.parametrize("M,K", [(7, 3), (10, 4), (5, 5), (9, 1), (6, 2)])
def test_1d_against_numpy_and_scipy(mode: str, M: int, K: int) -> None:
    rng = np.random.default_rng(M * 10 + K)
    x, w = rand(rng, M), rand(rng, K)
    np.testing.assert_allclose(conv1d(x, w, mode=mode), np.convolve(x, w, SCIPY_MODE[mode]), atol=1e-12)
    np.testing.assert_allclose(corr1d(x, w, mode=mode), signal.correlate2d(x[None], w[None], SCIPY_MODE[mode])[0],
                               atol=1e-12)
    if mode != "same" or K % 2:  # 1-D correlate's "same" is one sample off for even K (see conv.py)
        np.testing.assert_allclose(corr1d(x, w, mode=mode), np.correlate(x, w, SCIPY_MODE[mode]), atol=1e-12)
        np.testing.assert_allclose(corr1d(x, w, mode=mode), signal.correlate(x, w, SCIPY_MODE[mode]), atol=1e-12)
    assert len(corr1d(x, w, mode=mode)) == output_size(M, K, 1, mode_padding(mode, K))


def test_1d_worked_example_by_hand() -> None:
    x, w = np.array([1.0, 1, 2, 3, 1]), np.array([1.0, 0, -1])
    assert corr1d(x, w).tolist() == [-1, -2, 1]  # x_t − x_{t+2}
    assert conv1d(x, w).tolist() == [1, 2, -1]  # the flipped kernel
    assert conv1d(x, w, mode="wide").tolist() == [1, 1, 1, 2, -1, -3, -1]
    assert corr1d(x, w, stride=2, padding=1).tolist() == [-1, -2, 3]  # over 0 1 1 2 3 1 0


@given(M=st.integers(1, 12), K=st.integers(1, 12), seed=st.integers(0, 2**16))
@FEW
def test_wide_convolution_commutes(M: int, K: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w = rand(rng, M), rand(rng, K)
    np.testing.assert_allclose(conv1d(x, w, mode="wide"), conv1d(w, x, mode="wide"), atol=1e-12)
    X, W = rand(rng, M, K), rand(rng, K, 3)
    np.testing.assert_allclose(conv2d(X, W, mode="wide"), conv2d(W, X, mode="wide"), atol=1e-12)


# ------------------------------------------------------------------ 2-D against scipy / torch

@pytest.mark.parametrize("mode", ["narrow", "wide", "same"])
@pytest.mark.parametrize("shape,kernel", [((6, 7), (3, 3)), ((8, 5), (4, 2)), ((5, 5), (5, 5)), ((9, 4), (1, 3))])
def test_2d_against_scipy(mode: str, shape: tuple[int, int], kernel: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape) + 7 * sum(kernel))
    x, w = rand(rng, *shape), rand(rng, *kernel)
    np.testing.assert_allclose(conv2d(x, w, mode=mode), signal.convolve2d(x, w, SCIPY_MODE[mode]), atol=1e-12)
    np.testing.assert_allclose(corr2d(x, w, mode=mode), signal.correlate2d(x, w, SCIPY_MODE[mode]), atol=1e-12)


def test_convolution_is_correlation_with_the_kernel_rotated() -> None:
    rng = np.random.default_rng(0)
    x, w = rand(rng, 6, 6), rand(rng, 3, 3)
    np.testing.assert_allclose(conv2d(x, w), corr2d(x, rot180(w)))
    assert not np.allclose(conv2d(x, w), corr2d(x, w))  # an asymmetric kernel tells them apart


@given(H=st.integers(1, 12), W=st.integers(1, 12), K=st.integers(1, 5), S=st.integers(1, 3),
       P=st.integers(0, 3), seed=st.integers(0, 2**16))
@FEW
def test_2d_stride_and_padding_against_torch(H: int, W: int, K: int, S: int, P: int, seed: int) -> None:
    if H + 2 * P < K or W + 2 * P < K:
        return
    rng = np.random.default_rng(seed)
    x, w = rand(rng, H, W), rand(rng, K, K)
    ref = F.conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(w)[None, None], stride=S, padding=P)[0, 0]
    np.testing.assert_allclose(corr2d(x, w, stride=S, padding=P), ref.numpy(), atol=1e-10)
    np.testing.assert_allclose(conv2d(x, w, stride=S, padding=P), corr2d(x, rot180(w), stride=S, padding=P))


def test_same_mode_with_an_even_kernel_matches_torch_padding_same() -> None:
    rng = np.random.default_rng(3)
    x, w = rand(rng, 7, 8), rand(rng, 4, 2)
    with warnings.catch_warnings():  # torch notes (once per process) that it pads a copy
        warnings.simplefilter("ignore")
        ref = F.conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(w)[None, None], padding="same")[0, 0]
    np.testing.assert_allclose(corr2d(x, w, mode="same"), ref.numpy(), atol=1e-12)


def test_stride_subsamples_the_stride_one_output() -> None:
    rng = np.random.default_rng(1)
    x, w = rand(rng, 11, 10), rand(rng, 3, 2)
    np.testing.assert_allclose(corr2d(x, w, stride=(2, 3), padding=1), corr2d(x, w, padding=1)[::2, ::3])
    np.testing.assert_allclose(corr1d(x[0], w[0], stride=3, mode="wide"), corr1d(x[0], w[0], mode="wide")[::3])
