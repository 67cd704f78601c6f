"""CReLU, AVR and the scaled tanh against hand-worked values and `torch.autograd.gradcheck`."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from convscope.errors import UnknownNameError
from convscope.models.activations import (
    ACTIVATIONS,
    AVR,
    CReLU,
    ScaledTanh,
    channel_multiplier,
    make_activation,
)


def away_from_zero(*shape: int) -> torch.Tensor:
    """float64 values with |x| ≥ 0.1, where every activation here is smooth."""
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64)
    return (x + 0.1 * torch.sign(x)).requires_grad_()


def test_crelu_hand_worked() -> None:
    x = torch.tensor([1.0, -2.0, 0.0]).view(1, 3, 1, 1).requires_grad_()
    y = CReLU()(x)
    assert y.flatten().tolist() == [1.0, 0.0, 0.0, 0.0, 2.0, 0.0]
    # d/dx of sum(w · y): positive half passes w[:3] where x > 0, negative half gives −w[3:] where x < 0.
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).view(1, 6, 1, 1)
    (y * w).sum().backward()
    assert x.grad.flatten().tolist() == [1.0, -5.0, 0.0]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=12))
def test_crelu_halves_recover_input(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float64).view(1, -1, 1, 1)
    y = CReLU()(x)
    c = x.shape[1]
    assert y.shape == (1, 2 * c, 1, 1) and (y >= 0).all()
    torch.testing.assert_close(y[:, :c] - y[:, c:], x)  # pos − neg = x
    torch.testing.assert_close(y[:, :c] + y[:, c:], x.abs())  # pos + neg = |x| = AVR(x)


def test_crelu_runs_its_relu_once() -> None:
    crelu = CReLU()
    calls = []
    handle = crelu.relu.register_forward_hook(lambda *_: calls.append(1))
    try:
        crelu(torch.randn(2, 3, 4, 4))
    finally:
        handle.remove()
    assert calls == [1] and not crelu.relu.inplace


def test_avr_hand_worked() -> None:
    x = torch.tensor([-2.0, 0.5, 3.0], requires_grad=True)
    y = AVR()(x)
    assert y.tolist() == [2.0, 0.5, 3.0]
    y.sum().backward()
    assert x.grad.tolist() == [-1.0, 1.0, 1.0]


def test_scaled_tanh_maps_one_to_one() -> None:
    f = ScaledTanh()
    assert abs(f(torch.tensor(1.0)).item() - 1.0) < 1e-3
    assert abs(f(torch.tensor(-1.0)).item() + 1.0) < 1e-3
    assert abs(f(torch.tensor(100.0)).item() - 1.7159) < 1e-6


@pytest.mark.parametrize("module", [CReLU(), AVR(), ScaledTanh()], ids=["crelu", "avr", "scaled_tanh"])
def test_gradcheck_float64(module: nn.Module) -> None:
    assert torch.autograd.gradcheck(module, (away_from_zero(2, 3, 4, 4),))
    assert torch.autograd.gradgradcheck(module, (away_from_zero(1, 2, 3, 3),))


def test_factory_makes_fresh_modules() -> None:
    for name in ACTIVATIONS:
        a, b = make_activation(name), make_activation(name)
        assert a is not b and not getattr(a, "inplace", False)
    assert channel_multiplier(make_activation("crelu")) == 2
    assert channel_multiplier(make_activation("relu")) == 1
    assert isinstance(make_activation("none"), nn.Identity)
    assert isinstance(make_activation("leaky"), nn.LeakyReLU)


def test_unknown_activation_suggests_close_match() -> None:
    with pytest.raises(UnknownNameError, match="'crelu'"):
        make_activation("c-relu")
