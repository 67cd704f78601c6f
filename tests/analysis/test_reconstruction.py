import pytest
import torch
from torch import nn

from convscope.analysis.reconstruction import crelu_features, reconstruct, relative_error


def _spanning_conv(in_ch=2, seed=0):
    """3×3 filters, as many as the patch dimension, random: the shifted filters span the input."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(in_ch, 9 * in_ch, 3, padding=1)
    return conv


def test_positive_minus_negative_half_is_the_linear_response():
    conv = _spanning_conv()
    x = torch.randn(3, 2, 8, 8)
    z, mask = crelu_features(conv, x)
    assert mask.all()
    expected = nn.functional.conv2d(x.double(), conv.weight.double(), None, padding=1)
    torch.testing.assert_close(z, expected)  # in float64, whatever the module's dtype
    assert conv.weight.dtype == torch.float32  # and the module is not converted


def test_exact_when_the_shifted_filters_span_the_input():
    conv = _spanning_conv().double()
    x = torch.randn(2, 2, 10, 10, dtype=torch.float64)
    ratio = relative_error(x, reconstruct(conv, x))
    assert float(ratio.max()) <= 1e-6


def test_too_few_filters_recover_only_part_of_the_input():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 2, 3, stride=2, padding=1).double()  # 2 filters at stride 2: far fewer outputs than inputs
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    ratio = relative_error(x, reconstruct(conv, x))
    assert float(ratio.min()) > 0.3


def test_pooling_loses_information_but_known_entries_are_right():
    conv = _spanning_conv(1, seed=3).double()
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    x = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    z, mask = crelu_features(conv, x, pool)
    lin = nn.functional.conv2d(x, conv.weight, None, padding=1)
    assert 0 < mask.double().mean() < 1
    torch.testing.assert_close(z[mask], lin[mask])
    ratio = float(relative_error(x, reconstruct(conv, x, pool)).mean())
    assert 0.0 < ratio < 1.0


@pytest.mark.parametrize("bias", [True, False])
def test_bias_is_removed(bias):
    conv = nn.Conv2d(1, 9, 3, padding=1, bias=bias).double()
    if bias:
        with torch.no_grad():
            conv.bias.fill_(0.7)
    x = torch.randn(1, 1, 7, 7, dtype=torch.float64)
    assert float(relative_error(x, reconstruct(conv, x))) <= 1e-6
