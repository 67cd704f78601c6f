"""Layers of a convolutional network in NumPy, each with a forward pass and the backward pass the
chapter derives (Qiu, *Neural Networks and Deep Learning*, ch. 5; docs/REFERENCE.md §1).

Every layer has `forward(x) -> y`, which caches what the backward pass needs, and `backward(dy) -> dx`,
which takes ∂f/∂y and returns ∂f/∂x, filling `grads` (same keys and shapes as `params`) on the way.
Arrays are batched: images `(N, C, H, W)`, vectors `(N, D)`. Parameters have PyTorch's layouts
(conv weight `(out, in, K, K)`, linear weight `(out, in)`), so weights copy across either way.

The convolution layer computes Y = W ⊗ X + b (cross-correlation, as every deep-learning library does)
with its gradients (see `conv2d_backward_input` for ∂f/∂X):

    ∂f/∂W = ∂f/∂Y ⊗ X     (the output gradient slid over the input)
    ∂f/∂b = Σ ∂f/∂Y       (summed over the batch and the positions)
    ∂f/∂X = rot180(W) ~⊗ ∂f/∂Y  (a wide convolution)

All of it is vectorised: windows are views (`sliding_window_view`), contractions are matrix products;
the only Python loops run over the K×K taps of a kernel or pooling window, never over pixels.
Pooling lives in pool.py; activations and the softmax cross-entropy loss in activations.py.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convscope.textbook.conv import output_size


class Layer:
    """The contract: `forward` caches, `backward` returns ∂f/∂x and fills `grads`."""

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    def __init__(self) -> None:
        self.params, self.grads = {}, {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


def _init_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, dtype: type) -> np.ndarray:
    """U(−1/√fan_in, 1/√fan_in): PyTorch's default for both weights and biases of conv and linear layers."""
    bound = 1 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(dtype)


class Conv2d(Layer):
    """A multi-channel convolution layer with bias: Y_p = Σ_d W_{p,d} ⊗ X_d + b_p, batched.

    Args:
        in_channels: D, input maps.
        out_channels: P, output maps.
        kernel_size: K (square kernels).
        stride: S.
        padding: zeros on each side of each map.
        rng: generator for the initial weights (default: seed 0).
        dtype: float32 to train, float64 to check gradients.

    `needs_input_grad = False` skips ∂f/∂X (a network's first layer: nobody needs the image's gradient).
    The layer has P·D·K·K + P parameters.

    Example:
        >>> conv = Conv2d(1, 6, 5, padding=2)
        >>> conv(np.zeros((2, 1, 28, 28), np.float32)).shape
        (2, 6, 28, 28)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 rng: np.random.Generator | None = None, dtype: type = np.float32) -> None:
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng(0)
        fan_in = in_channels * kernel_size * kernel_size
        self.params = {"weight": _init_uniform(rng, (out_channels, in_channels, kernel_size, kernel_size), fan_in,
                                               dtype),
                       "bias": _init_uniform(rng, (out_channels,), fan_in, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.needs_input_grad = True
        self._cols = np.empty((0, 0), dtype)  # the im2col matrix of the last forward pass
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        w, b = self.params["weight"], self.params["bias"]
        P, D, K, _ = w.shape
        N, C, H, W = x.shape
        if C != D:
            raise ValueError(f"Conv2d expects {D} input channels, got an input of shape {x.shape}.")
        Ho = output_size(H, K, self.stride, self.padding)
        Wo = output_size(W, K, self.stride, self.padding)
        # Reuse last call's im2col buffer when the shapes agree: a fresh multi-megabyte array per call
        # costs page faults that take longer than the copy itself.
        if self._cols.shape != (D * K * K, N * Ho * Wo) or self._cols.dtype != x.dtype:
            self._cols = np.empty((D * K * K, N * Ho * Wo), x.dtype)
        cols = im2col(x, K, self.stride, self.padding, Ho, Wo, out=self._cols)  # (D·K·K, N·Ho·Wo)
        y = w.reshape(P, D * K * K) @ cols  # (P, N·Ho·Wo): every output is kernel · window
        self._x_shape = x.shape
        y = y.reshape(P, N, Ho, Wo).transpose(1, 0, 2, 3)  # (N, P, Ho, Wo)
        return y + b.reshape(1, P, 1, 1)  # the bias, and a C-ordered copy

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if self._x_shape is None:
            raise RuntimeError("Conv2d.backward called before forward.")
        x_shape, cols = self._x_shape, self._cols
        w = self.params["weight"]
        P = w.shape[0]
        self.grads["bias"][...] = dy.sum(axis=(0, 2, 3))  # ∂f/∂b = Σ over batch and positions
        dy_mat = dy.transpose(1, 0, 2, 3).reshape(P, -1)  # (P, N·Ho·Wo), in the order of the columns
        # ∂f/∂W[p, d, u, v] = Σ_{n,i,j} ∂f/∂Y[n, p, i, j] · X[n, d, iS+u, jS+v] = (∂f/∂Y ⊗ X)[p, d, u, v]:
        # the columns of `cols` are those X windows, so the correlation is one matrix product.
        # (Written cols @ dy_matᵀ and transposed back: OpenBLAS runs that orientation twice as fast.)
        self.grads["weight"][...] = (cols @ dy_mat.T).T.reshape(w.shape)
        if not self.needs_input_grad:
            return None
        return conv2d_backward_input(dy, w, self.stride, self.padding, x_shape)


def im2col(x: np.ndarray, K: int, stride: int, padding: int, Ho: int, Wo: int,
           out: np.ndarray | None = None) -> np.ndarray:
    """Every K×K window of every map of `x` (N, C, H, W) as one column: (C·K·K, N·Ho·Wo).

    Column (n, i, j) holds the window of input n under output position (i, j), flattened in the order
    of a kernel `(C, K, K)`, so `W.reshape(P, -1) @ im2col(x)` is the layer (Caffe's "image to columns").
    `out`, an array of that shape and x's dtype, is filled instead of allocating a new one.
    """
    N, C = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    win = sliding_window_view(xp, (K, K), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :Ho, :Wo]  # (N,C,Ho,Wo,K,K)
    if out is None:
        out = np.empty((C * K * K, N * Ho * Wo), x.dtype)
    # The one copy; with positions innermost it reads whole rows of each map, several times faster
    # than the (N·Ho·Wo, C·K·K) layout.
    np.copyto(out.reshape(C, K, K, N, Ho, Wo), win.transpose(1, 4, 5, 0, 2, 3))
    return out


def dilate(dy: np.ndarray, stride: int) -> np.ndarray:
    """Insert S − 1 zeros between neighbouring positions of the last two axes: (…, H, W) → (…, (H−1)S+1, (W−1)S+1).

    A stride-S layer is a stride-1 layer whose output is subsampled; dilating ∂f/∂Y undoes the subsampling,
    putting each gradient back where its window started, so the stride-1 formulas apply.
    """
    if stride == 1:
        return dy
    H, W = dy.shape[-2:]
    out = np.zeros((*dy.shape[:-2], (H - 1) * stride + 1, (W - 1) * stride + 1), dy.dtype)
    out[..., ::stride, ::stride] = dy
    return out


def conv2d_backward_input(dy: np.ndarray, w: np.ndarray, stride: int, padding: int,
                          x_shape: tuple[int, ...]) -> np.ndarray:
    """∂f/∂X = rot180(W) ~⊗ ∂f/∂Y for Y = W ⊗ X with stride S and padding P, batched.

    Per input map d: ∂f/∂X_d = Σ_p rot180(W_{p,d}) ~⊗ ∂f/∂Y_p, a wide (full) convolution, which is
    the same as the wide cross-correlation of ∂f/∂Y_p with rot180(W_{p,d}). Computed in four steps:

    1. dilate ∂f/∂Y by the stride (stride 1: nothing to do);
    2. the wide convolution, one kernel tap at a time: tap (u, v) adds a W[:, :, u, v]-weighted copy
       of ∂f/∂Y shifted by (u, v) (summing shifted, weighted copies is what a full convolution is).
       Contracting the P output maps first, one matrix product for all taps, is much cheaper than
       the im2col of the zero-padded ∂f/∂Y, which would copy every K×K window of it;
    3. the last rows/columns that a floored stride never read get no gradient (zeros);
    4. crop the padding: the gradient of the zeros added around X is not X's.

    `tests/textbook` checks it against the literal `conv2d(dy, W, mode="wide")` of conv.py and autograd.
    """
    P, D, K, _ = w.shape
    N, C, H, W = x_shape
    dyd = dilate(dy, stride)  # (N, P, Hd, Wd), Hd = (Ho−1)S + 1
    Hd, Wd = dyd.shape[-2:]
    # Contract the output maps first: z[:, u, v] = Σ_p W[p, :, u, v] ∂f/∂Y_p, for every tap at once.
    z = np.tensordot(w, dyd, axes=([0], [1]))  # (D, K, K, N, Hd, Wd)
    dxp = np.zeros((D, N, H + 2 * padding, W + 2 * padding), z.dtype)  # maps outermost, like z
    for u in range(K):  # the wide convolution: each tap adds its shifted copy (a loop over taps, not pixels)
        for v in range(K):
            dxp[:, :, u:u + Hd, v:v + Wd] += z[:, u, v]  # (D, N, Hd, Wd)
    # Rows and columns a floored stride never read keep their zeros; the padding's gradient is dropped.
    return np.ascontiguousarray(dxp[:, :, padding:padding + H, padding:padding + W].transpose(1, 0, 2, 3))


class Linear(Layer):
    """A fully connected layer y = x Wᵀ + b, with ∂f/∂W = (∂f/∂y)ᵀ x, ∂f/∂b = Σ ∂f/∂y, ∂f/∂x = ∂f/∂y W.

    Example:
        >>> Linear(400, 120)(np.zeros((8, 400), np.float32)).shape
        (8, 120)
    """

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator | None = None,
                 dtype: type = np.float32) -> None:
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng(0)
        self.params = {"weight": _init_uniform(rng, (out_features, in_features), in_features, dtype),
                       "bias": _init_uniform(rng, (out_features,), in_features, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.params["weight"].T + self.params["bias"]  # (N, out)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.grads["weight"][...] = dy.T @ self._x  # (out, in)
        self.grads["bias"][...] = dy.sum(axis=0)
        return dy @ self.params["weight"]  # (N, in)


class Flatten(Layer):
    """(N, C, H, W) → (N, C·H·W) in C order (as `torch.nn.Flatten`); backward reshapes back."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self._shape)
