"""Max and mean pooling with their backward passes (Qiu, *Neural Networks and Deep Learning*, ch. 5;
docs/REFERENCE.md §1).

Pooling (subsampling) summarises each K×K region of a feature map by one number: its maximum or its
mean. It has no parameters, so its backward pass only routes the error. The chapter writes the error
of the layer below a pooling layer as δˡ = f′(Zˡ) ⊙ up(δˡ⁺¹), where up(·) is the upsampling that
undoes the pooling:

- max pooling sends each δ to the position that won the maximum in its region and zero elsewhere
  (the arg-max "switch" recorded by the forward pass);
- mean pooling spreads each δ evenly: every position of the region gets δ/K².

Ties in max pooling go to the first maximum in reading order (row by row, left to right), which is
what `np.argmax` returns and what PyTorch's CPU kernel does. Windows may overlap (stride < K): a
position in several regions collects the gradients of all of them. No padding: a ragged last row or
column that no full window covers is dropped (floor, as in PyTorch) and gets zero gradient.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convscope.textbook.conv import output_size
from convscope.textbook.layers import Layer


def pool_windows(x: np.ndarray, K: int, stride: int) -> np.ndarray:
    """Every K×K pooling region of `x` (N, C, H, W), as a view: (N, C, Ho, Wo, K, K)."""
    Ho = output_size(x.shape[2], K, stride)
    Wo = output_size(x.shape[3], K, stride)
    return sliding_window_view(x, (K, K), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :Ho, :Wo]


def _tap(a: np.ndarray, u: int, v: int, stride: int, Ho: int, Wo: int) -> np.ndarray:
    """Tap (u, v) of every region, as a strided view (N, C, Ho, Wo): region (i, j) starts at (iS, jS)."""
    return a[:, :, u:u + stride * (Ho - 1) + 1:stride, v:v + stride * (Wo - 1) + 1:stride]


class _Pool(Layer):
    """What max and mean pooling share: a K×K region, stride S (S = K unless given), no parameters."""

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride or kernel_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


class MaxPool2d(_Pool):
    """Max pooling over K×K regions with stride S (default S = K, non-overlapping).

    Backward routes each gradient to the arg-max of its region (first maximum in reading order on
    ties) and zero elsewhere.

    Example:
        >>> pool = MaxPool2d(2)
        >>> pool(np.array([[[[1., 2], [4, 3]]]]))
        array([[[[4.]]]])
        >>> pool.backward(np.array([[[[1.]]]]))
        array([[[[0., 0.],
                 [1., 0.]]]])
    """

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        super().__init__(kernel_size, stride)
        self._switch: np.ndarray | None = None
        self._x_shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        K, S = self.kernel_size, self.stride
        Ho, Wo = output_size(x.shape[2], K, S), output_size(x.shape[3], K, S)
        # Visit the K² taps in reading order, keeping the running maximum and which tap holds it (the
        # "switch"); a later tap wins only if strictly larger, so ties stay with the first one.
        best = _tap(x, 0, 0, S, Ho, Wo).copy()  # (N, C, Ho, Wo)
        switch = np.zeros(best.shape, np.int16)
        for k in range(1, K * K):
            tap = _tap(x, k // K, k % K, S, Ho, Wo)
            switch = np.where(tap > best, np.int16(k), switch)
            best = np.maximum(best, tap)
        self._switch, self._x_shape = switch, x.shape
        return best

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._switch is None:
            raise RuntimeError("MaxPool2d.backward called before forward.")
        K, S = self.kernel_size, self.stride
        Ho, Wo = dy.shape[2:]
        dx = np.zeros(self._x_shape, dy.dtype)
        for k in range(K * K):  # tap k receives δ where it won its region: the "up" of the chapter
            _tap(dx, k // K, k % K, S, Ho, Wo)[...] += dy * (self._switch == k)
        return dx


class AvgPool2d(_Pool):
    """Mean pooling over K×K regions with stride S (default S = K); backward spreads δ/K² evenly.

    Example:
        >>> pool = AvgPool2d(2)
        >>> pool(np.array([[[[1., 2], [4, 3]]]]))
        array([[[[2.5]]]])
        >>> pool.backward(np.array([[[[1.]]]]))
        array([[[[0.25, 0.25],
                 [0.25, 0.25]]]])
    """

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        super().__init__(kernel_size, stride)
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x_shape = x.shape
        return pool_windows(x, self.kernel_size, self.stride).mean(axis=(-2, -1)).astype(x.dtype, copy=False)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._x_shape is None:
            raise RuntimeError("AvgPool2d.backward called before forward.")
        K, S = self.kernel_size, self.stride
        Ho, Wo = dy.shape[2:]
        share = (dy / (K * K)).astype(dy.dtype, copy=False)  # each of the K² positions gets an equal share
        dx = np.zeros(self._x_shape, dy.dtype)
        for k in range(K * K):  # overlapping regions (S < K) add up
            _tap(dx, k // K, k % K, S, Ho, Wo)[...] += share
        return dx
