"""Parameterisations: shapes, channel counts, range, seeds, and the FFT image and colour matrix against Lucent.

The oracle is Lucent's own code, read from greentfrapp/lucent (commit 6123386c, 2021-07-31),
`lucent/optvis/param/spatial.py` (`rfft2d_freqs`, `fft_image`) and `lucent/optvis/param/color.py`, written out
below in NumPy (Lucent needs torchvision, which does not run here).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.optvis import param

LUCENT_COLOR_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)


def lucent_rfft2d_freqs(h: int, w: int) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 2] if w % 2 == 1 else np.fft.fftfreq(w)[: w // 2 + 1]
    return np.sqrt(fx * fx + fy * fy)


def lucent_fft_image(spectrum: np.ndarray, h: int, w: int, decay_power: float = 1) -> np.ndarray:
    """Lucent's `fft_image(...)` inner(): scale, complex, irfftn(s=(h, w), norm='ortho'), crop, / 4."""
    freqs = lucent_rfft2d_freqs(h, w)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(w, h)) ** decay_power
    scaled = scale[None, None, ..., None] * spectrum
    image = np.fft.irfftn(scaled[..., 0] + 1j * scaled[..., 1], s=(h, w), axes=(-2, -1), norm="ortho")
    return image / 4.0


@pytest.mark.parametrize(("h", "w"), [(8, 8), (7, 9), (28, 28), (6, 5)])
def test_frequencies_and_fft_image_are_lucents(h, w):
    lucent = lucent_rfft2d_freqs(h, w)
    np.testing.assert_allclose(param.rfft2d_freqs(h, w), lucent[:, : w // 2 + 1], rtol=0, atol=1e-15)
    # the FFT image of the same coefficients (Lucent keeps one more, unread, column for odd w)
    rng = np.random.default_rng(h * 100 + w)
    coeffs = rng.normal(size=(2, 3, *lucent.shape, 2))
    for decay in (1.0, 1.5):
        params, image_fn = param.fft((2, 3, h, w), decay_power=decay, dtype=torch.float64)
        with torch.no_grad():
            params[0].copy_(torch.from_numpy(coeffs[..., : w // 2 + 1, :]))
        lucent_image = lucent_fft_image(coeffs, h, w, decay)
        np.testing.assert_allclose(image_fn().detach().numpy(), lucent_image, rtol=0, atol=1e-12)


def test_spectrum_scale_numbers():
    # 4×4: frequencies 0, ¼, ½ cycles/pixel; DC capped at 1/max(h, w) = ¼ → scale 4
    scale = param.spectrum_scale(4, 4)
    assert scale[0, 0] == 4 and scale[0, 1] == 4 and scale[0, 2] == 2 and scale[2, 2] == pytest.approx(2**0.5)
    assert param.spectrum_scale(4, 4, decay_power=2)[0, 2] == 4


def test_colour_correlation_is_lucents():
    np.testing.assert_array_equal(param.COLOR_CORRELATION_SVD_SQRT, LUCENT_COLOR_SVD_SQRT)
    max_norm = np.max(np.linalg.norm(LUCENT_COLOR_SVD_SQRT, axis=0))  # Lucent's max_norm_svd_sqrt
    np.testing.assert_allclose(param.COLOR_CORRELATION_NORMALIZED, LUCENT_COLOR_SVD_SQRT / max_norm, rtol=1e-6)
    assert max_norm == pytest.approx(np.sqrt(0.26**2 + 0.27**2 + 0.27**2))  # the first column is the longest
    # Lucent's _linear_decorrelate_color: (B, H, W, 3) @ C_normalized.T
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    lucent = (x.permute(0, 2, 3, 1) @ torch.from_numpy(LUCENT_COLOR_SVD_SQRT / max_norm).T).permute(0, 3, 1, 2)
    torch.testing.assert_close(param.decorrelate_colors(x), lucent)


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("fft_space", [True, False])
def test_images_have_the_shape_and_range_asked(channels, fft_space):
    params, image_fn = param.image((2, channels, 9, 12), fft_space=fft_space, sd=3.0)
    x = image_fn()
    assert x.shape == (2, channels, 9, 12) and x.dtype == torch.float32
    assert 0 < float(x.detach().min()) and float(x.detach().max()) < 1 and float(x.detach().std()) > 0.01
    assert all(p.requires_grad and p.is_leaf for p in params)
    x.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_colours_are_decorrelated_only_for_rgb():
    _, rgb = param.image((1, 3, 8, 8), fft_space=False, seed=5)
    _, plain = param.image((1, 3, 8, 8), fft_space=False, seed=5, decorrelate=False)
    _, raw = param.pixel((1, 3, 8, 8), seed=5)
    torch.testing.assert_close(rgb(), torch.sigmoid(param.decorrelate_colors(raw())))
    torch.testing.assert_close(plain(), torch.sigmoid(raw()))
    with pytest.raises(ValueError, match="3-channel"):
        param.image((1, 1, 8, 8), decorrelate=True)


def test_each_image_starts_from_its_own_seed_on_the_model_device_and_dtype():
    state = torch.get_rng_state()
    batch, _ = param.pixel((3, 2, 5, 5), seed=[10, 11, 12])
    alone, _ = param.pixel((1, 2, 5, 5), seed=11)
    torch.testing.assert_close(batch[0][1:2], alone[0])  # image 1 of the batch = the image of seed 11 alone
    assert torch.equal(param.fft((3, 1, 6, 6), seed=10)[0][0], param.fft((3, 1, 6, 6), seed=[10, 11, 12])[0][0])
    double, _ = param.fft((1, 1, 6, 6), seed=4, dtype=torch.float64)
    single, _ = param.fft((1, 1, 6, 6), seed=4)
    assert double[0].dtype == torch.float64 and torch.equal(double[0].float(), single[0])
    assert param.image((1, 3, 6, 6), dtype=torch.float64)[1]().dtype == torch.float64
    assert not torch.equal(batch[0][0], batch[0][1])
    assert torch.equal(torch.get_rng_state(), state)  # drawn from generators, not the global state
    with pytest.raises(ValueError, match="one seed per image"):
        param.pixel((2, 1, 4, 4), seed=[1])
