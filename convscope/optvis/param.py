"""Image parameterisations: what the optimiser moves, and how that becomes an image.

Mordvintsev, Pezzotti, Schubert and Olah ("Differentiable Image Parameterizations", Distill 2018) show that the
same objective gives very different pictures depending on the variables the optimiser steps in. Each
parameterisation here returns `(params, image_fn)`, as Lucid/Lucent's `param/spatial.py` and `param/color.py`:
`params` are the leaf tensors Adam updates and `image_fn()` draws the `(B, C, H, W)` image from them.

- `pixel`: free pixels, N(0, sd²).
- `fft`: a Fourier-space image whose coefficients are scaled like a natural image's spectrum, amplitude ∝
  1/frequency^decay_power (Lucid's `fft_image`): a step of Adam changes low frequencies as much as high ones, which
  removes the high-frequency noise plain pixel ascent produces. The scale is Lucent's `param/spatial.py`
  (`rfft2d_freqs`, 1 / max(f, 1/max(H, W))^decay_power, orthonormal inverse FFT, divided by Lucid's constant 4).
- `decorrelate_colors`: for 3-channel images, the optimised channels are decorrelated colour components mapped to
  RGB by the square root of ImageNet's colour correlation (Lucent's `param/color.py`, its 3×3 matrix), so a step
  changes luminance and colour separately.
- `image`: the whole chain for any channel count (1-channel MNIST models included): pixel or FFT, colours
  decorrelated when there are 3 channels, squashed into (0, 1) by a sigmoid, the range of the training images.
  A model that wants normalised inputs gets `transforms.normalize(mean, std)` as its last transform.

Every image of a batch starts from its own seed (`seed + b` for image b, or an explicit list), drawn on the CPU by
a `torch.Generator` and then moved to the model's device and dtype: the start does not depend on the batch it is
part of, on the device, nor on the global random state (which is left untouched).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

Tensor = torch.Tensor
Param = tuple[list[Tensor], Callable[[], Tensor]]

# Lucent's param/color.py: the square root of ImageNet's 3×3 colour correlation (from its SVD), and its columns
# scaled so that the largest has unit norm.
COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR_CORRELATION_NORMALIZED = COLOR_CORRELATION_SVD_SQRT / np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0).max()
FFT_MAGIC = 4.0  # Lucid's constant: the inverse FFT is divided by it ("reduces saturation")


def _seeds(seed: int | Sequence[int], batch: int) -> list[int]:
    seeds = [seed + b for b in range(batch)] if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for a batch of {batch} images: give one seed per image")
    return seeds


def _normal(shape: Sequence[int], sd: float, seed: int | Sequence[int], device: torch.device | str,
            dtype: torch.dtype) -> Tensor:
    """A leaf N(0, sd²) tensor of `shape` whose slice b is drawn from generator seeds[b] on the CPU."""
    draws = [torch.randn(tuple(shape[1:]), generator=torch.Generator().manual_seed(s), dtype=torch.float64)
             for s in _seeds(seed, shape[0])]
    return (torch.stack(draws) * sd).to(device, dtype).requires_grad_(True)


def pixel(shape: Sequence[int], sd: float = 0.01, seed: int | Sequence[int] = 0, device: torch.device | str = "cpu",
          dtype: torch.dtype = torch.float32) -> Param:
    """Free pixels of `shape` `(B, C, H, W)`: the parameter is the image (unbounded; `image` adds the sigmoid)."""
    p = _normal(shape, sd, seed, device, dtype)
    return [p], lambda: p


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """|frequency| in cycles per pixel of each coefficient of a real 2-D FFT of an h×w image: `(h, w // 2 + 1)`.

    Lucid/Lucent keep one more column when w is odd; the inverse FFT of an h×w image never reads it.
    """
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def spectrum_scale(h: int, w: int, decay_power: float = 1.0) -> np.ndarray:
    """1 / max(f, 1/max(h, w))^decay_power for each coefficient: natural images' 1/f amplitude, capped at DC."""
    return 1.0 / np.maximum(rfft2d_freqs(h, w), 1.0 / max(h, w)) ** decay_power


def fft(shape: Sequence[int], sd: float = 0.01, decay_power: float = 1.0, seed: int | Sequence[int] = 0,
        device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Param:
    """A Fourier-space image of `shape` `(B, C, H, W)`, unbounded (`image` adds colour and the sigmoid).

    The parameter holds the real and imaginary parts of the half spectrum, `(B, C, H, W // 2 + 1, 2)`, N(0, sd²);
    the image is irfft2(scale · spectrum, orthonormal) / 4.
    """
    b, c, h, w = shape
    spectrum = _normal((b, c, h, w // 2 + 1, 2), sd, seed, device, dtype)
    scale = torch.as_tensor(spectrum_scale(h, w, decay_power), device=device, dtype=dtype)[..., None]  # (H, W//2+1, 1)

    def image_fn() -> Tensor:
        scaled = torch.view_as_complex((scale * spectrum).contiguous())  # (B, C, H, W // 2 + 1) complex
        return torch.fft.irfft2(scaled, s=(h, w), norm="ortho") / FFT_MAGIC

    return [spectrum], image_fn


def decorrelate_colors(x: Tensor) -> Tensor:
    """Map decorrelated colour components `(B, 3, H, W)` to RGB by Lucent's normalised correlation matrix."""
    m = torch.as_tensor(COLOR_CORRELATION_NORMALIZED, device=x.device, dtype=x.dtype)
    return torch.einsum("ij,bjhw->bihw", m, x)  # each pixel's colour vector times M (rgb = M · components)


def image(shape: Sequence[int], fft_space: bool = True, decorrelate: bool | None = None, sd: float = 0.01,
          seed: int | Sequence[int] = 0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
          decay_power: float = 1.0) -> Param:
    """An image of `shape` `(B, C, H, W)` in (0, 1): pixel or Fourier space, colours decorrelated, sigmoid.

    Args:
        shape: `(B, C, H, W)`; any channel count.
        fft_space: Fourier parameterisation (Lucid's default) rather than free pixels.
        decorrelate: decorrelated colours; `None` means "when C is 3". Only 3-channel images can have them.
        sd: spread of the random start.
        seed: image b starts from `seed + b`, or from `seed[b]` for a list.
        device, dtype: the model's (`hooks.model_device`, `hooks.model_dtype`).
        decay_power: the spectrum's 1/f exponent (FFT only).

    Example:
        >>> params, image_fn = image((6, 1, 28, 28))
        >>> image_fn().shape
        torch.Size([6, 1, 28, 28])
    """
    channels = shape[1]
    decorrelate = channels == 3 if decorrelate is None else decorrelate
    if decorrelate and channels != 3:
        raise ValueError(f"colours are decorrelated only for 3-channel images, not {channels}: pass decorrelate=False")
    if fft_space:
        params, raw = fft(shape, sd, decay_power, seed, device, dtype)
    else:
        params, raw = pixel(shape, sd, seed, device, dtype)
    if decorrelate:
        return params, lambda: torch.sigmoid(decorrelate_colors(raw()))
    return params, lambda: torch.sigmoid(raw())


__all__ = ["COLOR_CORRELATION_NORMALIZED", "COLOR_CORRELATION_SVD_SQRT", "FFT_MAGIC", "Param", "decorrelate_colors",
           "fft", "image", "pixel", "rfft2d_freqs", "spectrum_scale"]
