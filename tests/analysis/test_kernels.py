"""Sobel, Gaussian and Laplacian kernels planted into `nn.Conv2d` against `scipy.signal.correlate2d`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from convscope.analysis.kernels import (
    filter_bank,
    gaussian,
    laplacian,
    plant,
    planted_conv,
    sobel_x,
    sobel_y,
)
from convscope.data.images import sample_image

IMAGE = sample_image("camera", size=96)


@pytest.mark.parametrize("name", ["sobel_x", "sobel_y", "gaussian", "laplacian"])
@pytest.mark.parametrize(("padding", "mode"), [("same", "same"), (0, "valid")])
def test_planted_conv_equals_correlate2d(name, padding, mode):
    kernel = filter_bank()[name]
    conv = planted_conv([kernel], padding=padding)
    with torch.no_grad():
        got = conv(torch.from_numpy(IMAGE)[None, None])[0, 0].numpy()
    want = correlate2d(IMAGE.astype(np.float64), kernel.astype(np.float64), mode=mode, boundary="fill")
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_bank_of_mixed_sizes_gives_each_kernel_its_own_map():
    kernels = [sobel_x(), sobel_y(), gaussian(5, 1.0), laplacian()]
    conv = planted_conv(kernels)  # 3×3 kernels centred in 5×5
    assert conv.weight.shape == (4, 1, 5, 5) and float(conv.bias.detach().abs().max()) == 0
    with torch.no_grad():
        maps = conv(torch.from_numpy(IMAGE)[None, None])[0].numpy()
    for got, k in zip(maps, kernels):
        np.testing.assert_allclose(got, correlate2d(IMAGE, k, mode="same"), atol=1e-5)


def test_kernel_conventions():
    ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))  # brighter to the right
    assert (correlate2d(ramp, sobel_x(), mode="valid") > 0).all()
    assert np.allclose(correlate2d(ramp, sobel_y(), mode="valid"), 0)
    assert np.isclose(gaussian(7, 1.5).sum(), 1.0) and laplacian().sum() == 0
    assert np.allclose(correlate2d(ramp, laplacian(), mode="valid"), 0)  # a linear ramp has no curvature


def test_plant_sums_over_input_channels_and_checks_sizes():
    conv = torch.nn.Conv2d(3, 2, 5, bias=True)
    plant(conv, [sobel_x(), laplacian()], bias=0.5)
    centred = np.zeros((5, 5), np.float32)
    centred[1:4, 1:4] = sobel_x()  # the 3×3 kernel in the middle of the 5×5 frame
    for c in range(3):
        np.testing.assert_array_equal(conv.weight[0, c].detach().numpy(), centred)
    assert torch.all(conv.bias == 0.5)
    # the oracle for "sums over input channels": each output map is the kernel correlated with the
    # sum of the channels, plus the bias
    rgb = np.random.default_rng(0).random((3, 12, 12)).astype(np.float32)
    with torch.no_grad():
        got = conv(torch.from_numpy(rgb)[None])[0].numpy()
    for i, k in enumerate([sobel_x(), laplacian()]):
        np.testing.assert_allclose(got[i], correlate2d(rgb.sum(0), k, mode="valid")[1:-1, 1:-1] + 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="do not fit"):
        plant(torch.nn.Conv2d(1, 3, 3), [sobel_x(), sobel_y()])
    with pytest.raises(ValueError, match="do not fit"):
        plant(torch.nn.Conv2d(1, 1, 3), [gaussian(5)])
    with pytest.raises(ValueError, match="odd"):
        gaussian(4)
