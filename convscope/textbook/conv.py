"""One- and two-dimensional convolution and cross-correlation, as in Qiu, *Neural Networks and Deep
Learning*, ch. 5 (docs/REFERENCE.md §1).

For an input x of length M and a kernel w of length K, the book's two operations are

    convolution        y_t = Σ_k w_k · x_{t−k+1}        (the kernel is flipped, rot180 in 2-D)
    cross-correlation  y_t = Σ_k w_k · x_{t+k−1}        (the kernel is slid as it is)

so `conv(x, w) == corr(x, rot180(w))`. Deep-learning "convolution" layers compute the correlation;
with learned kernels the two are equivalent.

With zero padding P on each side and stride S the output length is (M − K + 2P)/S + 1 (`output_size`).
The three classic modes, all at S = 1:

    narrow  P = 0        → M − K + 1      (scipy "valid")
    wide    P = K − 1    → M + K − 1      (scipy "full"; wide convolution commutes: x ~⊗ w == w ~⊗ x)
    same    P = (K−1)/2  → M              (scipy "same")

"same" for an even K: K − 1 zeros do not split evenly, so each output sits over the kernel's centre
tap c = (K−1)//2 (the left of the two middle taps). Cross-correlation then pads c zeros before and
K//2 after, as PyTorch's `padding="same"` and `scipy.signal.correlate2d(mode="same")` do; convolution,
whose kernel is flipped, pads K//2 before and c after, as `scipy.signal.convolve2d` and `np.convolve`
do. (The 1-D `np.correlate` and `scipy.signal.correlate` in "same" mode are the odd ones out: for
an even K they start one sample earlier, i.e. pad K//2 before.)

A stride S that does not divide M − K + 2P drops the last incomplete window (floor, like PyTorch);
`output_size(..., exact=True)` raises instead.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MODES = ("narrow", "wide", "same")
Padding = int | tuple[int, int]  # zeros on each side, or (before, after)


def output_size(M: int, K: int, stride: int = 1, padding: Padding = 0, exact: bool = False) -> int:
    """Output length (M − K + 2P)/S + 1 of a convolution (docs/REFERENCE.md §1).

    Args:
        M: input length.
        K: kernel length.
        stride: step S between windows.
        padding: zeros P on each side, or a pair (before, after) for uneven padding.
        exact: raise when S does not divide M − K + 2P; by default the quotient is floored, as in
            PyTorch: the last, incomplete window is dropped.

    Raises:
        ValueError: a non-positive size or stride, negative padding, a kernel longer than the
            padded input (no complete window), or, with `exact`, a stride that does not divide.

    Example:
        >>> output_size(7, 3), output_size(7, 3, padding=2), output_size(7, 3, padding=1)
        (5, 9, 7)
    """
    before, after = _pair(padding)
    if M < 1 or K < 1 or stride < 1 or before < 0 or after < 0:
        raise ValueError(f"output_size needs M ≥ 1, K ≥ 1, stride ≥ 1 and padding ≥ 0; "
                         f"got M={M}, K={K}, stride={stride}, padding={padding}.")
    span = M + before + after - K  # how far the kernel can slide
    if span < 0:
        raise ValueError(f"The kernel (K={K}) is longer than the padded input (M={M} plus padding {padding}): "
                         "no output position; pad more or use a smaller kernel.")
    if exact and span % stride:
        raise ValueError(f"Stride {stride} does not divide M − K + 2P = {span} (M={M}, K={K}, padding={padding}): "
                         "the last window would be incomplete; change the padding or the stride.")
    return span // stride + 1


def mode_padding(mode: str, K: int, flipped: bool = False) -> tuple[int, int]:
    """Zeros (before, after) that `mode` adds for a kernel of length K.

    `flipped` is True for convolution: its kernel is reversed, so an uneven "same" padding mirrors.
    """
    if mode == "narrow":
        return 0, 0
    if mode == "wide":
        return K - 1, K - 1
    if mode == "same":
        c = (K - 1) // 2  # the centre tap; the left of the two middle taps when K is even
        return (K - 1 - c, c) if flipped else (c, K - 1 - c)
    raise ValueError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)} (or give padding instead).")


def corr1d(x: np.ndarray, w: np.ndarray, stride: int = 1, padding: Padding | None = None,
           mode: str | None = None) -> np.ndarray:
    """Cross-correlation y_t = Σ_k w_k x_{(t−1)S+k} of a 1-D signal (the kernel is not flipped).

    Args:
        x: input signal, shape (M,).
        w: kernel, shape (K,).
        stride: step S between windows.
        padding: zeros on each side (or (before, after)); give either this or `mode`.
        mode: "narrow" (the default), "wide" or "same".

    Returns:
        Shape (output_size(M, K, S, P),).

    Example:
        >>> corr1d(np.array([1., 2, 3, 4]), np.array([1., 0, -1]))
        array([-2., -2.])
    """
    x, w = _as_1d(x, "x"), _as_1d(w, "w")
    return corr2d(x[None], w[None], (1, stride), _padding_2d(padding, mode, (1, len(w)), False, 1))[0]


def conv1d(x: np.ndarray, w: np.ndarray, stride: int = 1, padding: Padding | None = None,
           mode: str | None = None) -> np.ndarray:
    """Convolution y_t = Σ_k w_k x_{t−k+1}: cross-correlation with the kernel reversed.

    Same arguments as `corr1d`. In wide mode it equals `np.convolve(x, w, "full")` and commutes.

    Example:
        >>> conv1d(np.array([1., 2, 3]), np.array([1., 1]), mode="wide")
        array([1., 3., 5., 3.])
    """
    x, w = _as_1d(x, "x"), _as_1d(w, "w")
    return corr2d(x[None], w[None, ::-1], (1, stride), _padding_2d(padding, mode, (1, len(w)), True, 1))[0]


def corr2d(x: np.ndarray, w: np.ndarray, stride: int | tuple[int, int] = 1,
           padding: Padding | tuple[Padding, Padding] | None = None, mode: str | None = None) -> np.ndarray:
    """Two-dimensional cross-correlation Y = W ⊗ X: y_ij = Σ_uv w_uv x_{(i−1)S+u, (j−1)S+v}.

    Args:
        x: input, shape (M, N).
        w: kernel, shape (U, V).
        stride: S for both axes, or (S_rows, S_cols).
        padding: zeros on every side, or one padding per axis (each an int or (before, after));
            give either this or `mode`.
        mode: "narrow" (the default), "wide" or "same", applied to both axes.

    Returns:
        Shape (output_size(M, U, S, P), output_size(N, V, S, P)).

    Example:
        >>> corr2d(np.eye(3), np.ones((2, 2)))
        array([[2., 1.],
               [1., 2.]])
    """
    x, w = _as_2d(x, "x"), _as_2d(w, "w")
    pads = _padding_2d(padding, mode, w.shape, False, 2)
    return _corr2d(x, w, _pair(stride), pads)


def conv2d(x: np.ndarray, w: np.ndarray, stride: int | tuple[int, int] = 1,
           padding: Padding | tuple[Padding, Padding] | None = None, mode: str | None = None) -> np.ndarray:
    """Two-dimensional convolution: cross-correlation with the kernel rotated by 180°.

    Same arguments as `corr2d`; equals `scipy.signal.convolve2d` in the three modes (at stride 1).

    Example:
        >>> conv2d(np.eye(2), np.array([[1., 2], [3, 4]]), mode="wide")
        array([[1., 2., 0.],
               [3., 5., 2.],
               [0., 3., 4.]])
    """
    x, w = _as_2d(x, "x"), _as_2d(w, "w")
    pads = _padding_2d(padding, mode, w.shape, True, 2)
    return _corr2d(x, rot180(w), _pair(stride), pads)


def rot180(w: np.ndarray) -> np.ndarray:
    """The kernel rotated by 180° over its last two axes (reversed, for a 1-D kernel)."""
    return w[..., ::-1] if w.ndim == 1 else w[..., ::-1, ::-1]


def _corr2d(x: np.ndarray, w: np.ndarray, stride: tuple[int, int],
            pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    (U, V), (s_r, s_c) = w.shape, stride
    rows = output_size(x.shape[0], U, s_r, pads[0])  # validates, and gives the message on failure
    cols = output_size(x.shape[1], V, s_c, pads[1])
    xp = np.pad(x, pads)
    windows = sliding_window_view(xp, (U, V))[::s_r, ::s_c][:rows, :cols]  # (rows, cols, U, V), no copy
    dtype = np.result_type(x, w)
    return np.einsum("ijuv,uv->ij", windows, w).astype(dtype, copy=False)


def _padding_2d(padding: object, mode: str | None, kernel: tuple[int, int], flipped: bool,
                ndim: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((before, after) rows, (before, after) cols) from either `padding` or `mode`."""
    if padding is not None and mode is not None:
        raise ValueError(f"Give either padding ({padding}) or mode ({mode!r}), not both.")
    if padding is None:
        mode = mode or "narrow"
        rows = mode_padding(mode, kernel[0], flipped) if ndim == 2 else (0, 0)
        return rows, mode_padding(mode, kernel[1], flipped)
    if ndim == 1:
        return (0, 0), _pair(padding)
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    p_rows, p_cols = padding  # type: ignore[misc]
    return _pair(p_rows), _pair(p_cols)


def _pair(v: object) -> tuple[int, int]:
    if isinstance(v, int | np.integer):
        return int(v), int(v)
    a, b = v  # type: ignore[misc]
    return int(a), int(b)


def _as_1d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}.")
    return a


def _as_2d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be two-dimensional, got shape {a.shape}.")
    return a
