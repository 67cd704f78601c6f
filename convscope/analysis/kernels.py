"""Hand-made convolution kernels (Sobel, Gaussian, Laplacian) and planting them into `nn.Conv2d`.

The textbook convolution chapter (Qiu Xipeng, *Neural Networks and Deep Learning*, ch. 5, §5.1;
docs/REFERENCE.md §1) introduces convolution with fixed filters before learned ones: a Gaussian smooths,
a Sobel kernel (Sobel & Feldman, 1968) responds to edges of one orientation, a Laplacian to blobs
and fine detail (Marr & Hildreth, 1980). A deep-learning "convolution" is a cross-correlation (no
kernel flip), so the kernels here are written the way `torch.nn.Conv2d` and
`scipy.signal.correlate2d` apply them: `sobel_x` gives a positive response where the image gets
brighter to the right (a vertical edge).

`plant` writes such kernels into a conv layer's weights, which shows that a CNN's first layer is
exactly this kind of filter bank, only learned; `planted_conv` builds that layer.

Example:
    >>> conv = planted_conv([sobel_x(), sobel_y()])          # Conv2d(1, 2, 3, padding=1), bias 0
    >>> conv(torch.rand(1, 1, 64, 64)).shape
    torch.Size([1, 2, 64, 64])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def sobel_x() -> np.ndarray:
    """3×3 Sobel kernel for the horizontal derivative d/dx: responds to vertical edges."""
    return np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)


def sobel_y() -> np.ndarray:
    """3×3 Sobel kernel for the vertical derivative d/dy (downwards): responds to horizontal edges."""
    return sobel_x().T.copy()


def gaussian(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """A `size × size` Gaussian smoothing kernel with standard deviation `sigma` pixels, summing to 1.

    Args:
        size: odd side length.
        sigma: standard deviation in pixels, > 0.

    Raises:
        ValueError: `size` is even or below 1, or `sigma` is not positive.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"a Gaussian kernel needs an odd size >= 1, got {size}")
    if sigma <= 0:
        raise ValueError(f"a Gaussian kernel needs sigma > 0, got {sigma}")
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    k = np.outer(g, g)  # separable: G(x, y) = g(x)·g(y)
    return (k / k.sum()).astype(np.float32)


def laplacian() -> np.ndarray:
    """The 3×3 four-neighbour Laplacian ∂²/∂x² + ∂²/∂y² (sums to 0: flat regions give 0)."""
    return np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)


def filter_bank(gaussian_size: int = 5, gaussian_sigma: float = 1.0) -> dict[str, np.ndarray]:
    """The classic kernels by name: sobel_x, sobel_y, gaussian, laplacian."""
    return {"sobel_x": sobel_x(), "sobel_y": sobel_y(), "gaussian": gaussian(gaussian_size, gaussian_sigma),
            "laplacian": laplacian()}


def stack_kernels(kernels: Sequence[np.ndarray]) -> np.ndarray:
    """Kernels of odd, possibly different sizes, zero-padded (centred) to one `(n, k, k)` array.

    Centring keeps each kernel's response unchanged: a 3×3 Sobel inside a 5×5 frame of zeros, with
    padding 2 instead of 1, gives the same map.
    """
    sizes = [np.asarray(k).shape for k in kernels]
    if not kernels or any(len(s) != 2 or s[0] % 2 == 0 or s[1] % 2 == 0 for s in sizes):
        raise ValueError(f"kernels must be a non-empty list of 2-D arrays with odd sides, got shapes {sizes}")
    k = max(max(s) for s in sizes)
    out = np.zeros((len(kernels), k, k), np.float32)
    for i, (kern, (h, w)) in enumerate(zip(kernels, sizes)):
        top, left = (k - h) // 2, (k - w) // 2
        out[i, top:top + h, left:left + w] = kern
    return out


@torch.no_grad()
def plant(conv: nn.Conv2d, kernels: Sequence[np.ndarray] | np.ndarray, bias: float = 0.0) -> nn.Conv2d:
    """Write `kernels` into `conv` in place: output channel i applies kernel i to every input channel.

    Args:
        conv: a `Conv2d` with `len(kernels)` output channels, square kernels of size >= the largest kernel.
        kernels: 2-D kernels (odd sides), or an `(n, k, k)` array.
        bias: the value every output channel's bias is set to (if the layer has a bias).

    Returns:
        `conv` itself. With several input channels, each output channel sums the kernel over all of
        them (an edge detector on the channel sum).

    Raises:
        ValueError: the number or size of the kernels does not fit the layer.
    """
    bank = stack_kernels(list(kernels))  # (out, k, k)
    out_ch, in_ch, kh, kw = conv.weight.shape
    if len(bank) != out_ch or bank.shape[1] > kh or kh != kw:
        raise ValueError(f"{len(bank)} kernels of {bank.shape[1]}×{bank.shape[2]} do not fit a conv with "
                         f"{out_ch} output channels of {kh}×{kw}")
    bank = stack_kernels([*bank, np.zeros((kh, kh), np.float32)])[:-1]  # centred in the layer's kh × kh
    w = torch.as_tensor(bank, dtype=conv.weight.dtype, device=conv.weight.device)
    conv.weight.copy_(w[:, None].expand(out_ch, in_ch, kh, kw))  # (out, 1, k, k) -> (out, in, k, k)
    if conv.bias is not None:
        conv.bias.fill_(bias)
    return conv


def planted_conv(kernels: Sequence[np.ndarray], in_channels: int = 1, padding: int | str = "same") -> nn.Conv2d:
    """A new `Conv2d(in_channels, len(kernels), k)` whose filters are `kernels` and whose bias is 0.

    Args:
        kernels: 2-D kernels with odd sides (zero-padded to the largest).
        in_channels: input channels (each output sums its kernel over all of them).
        padding: "same" keeps the image size (zero padding (k−1)/2, the textbook's equal-width
            convolution); 0 is the narrow ("valid") convolution.

    Example:
        >>> planted_conv([gaussian(5, 1.0)], padding=0)(torch.ones(1, 1, 9, 9)).shape
        torch.Size([1, 1, 5, 5])
    """
    k = stack_kernels(list(kernels)).shape[1]
    conv = nn.Conv2d(in_channels, len(kernels), k, padding=padding)
    return plant(conv, kernels)


def correlate(image: np.ndarray, kernel: np.ndarray, mode: str = "same") -> np.ndarray:
    """The NumPy/SciPy cross-correlation of a 2-D image with a kernel, zero-padded (the oracle).

    Args:
        image: `(H, W)`.
        kernel: `(k, k)`, odd.
        mode: "same" (output `(H, W)`) or "valid" (output `(H − k + 1, W − k + 1)`).
    """
    from scipy.signal import correlate2d

    return correlate2d(image, kernel, mode=mode, boundary="fill", fillvalue=0).astype(np.float32)


__all__ = ["correlate", "filter_bank", "gaussian", "laplacian", "plant", "planted_conv", "sobel_x", "sobel_y",
           "stack_kernels"]
