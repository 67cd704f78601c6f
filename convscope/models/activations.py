"""Activation modules of the zoo: CReLU, AVR, LeCun's scaled tanh, and a factory by name.

- CReLU, concatenated ReLU (Shang, Sohn, Almeida, Lee, "Understanding and Improving Convolutional
  Neural Networks via Concatenated Rectified Linear Units", ICML 2016, eq. 1):
  CReLU(x) = concat(ReLU(x), ReLU(−x)) along channels, so it doubles the channels the next layer sees.
- AVR, absolute value rectification (same paper, Table 1): AVR(x) = |x|.
- Scaled tanh (LeCun, Bottou, Bengio, Haffner, Proc. IEEE 1998, Appendix A):
  f(a) = 1.7159·tanh(2a/3), chosen so that f(±1) = ±1.

Every model builds each activation through `make_activation`, one fresh module per use, never in
place, so explain methods can hook every activation by its dotted name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from convscope.errors import unknown_name


class CReLU(nn.Module):
    """Concatenated ReLU: `concat(relu(x), relu(-x))` on dim 1, doubling the channels.

    It is computed as one ReLU over `concat(x, -x)`, held as the child module `relu` and called
    exactly once, so methods that rewrite ReLU gradients (deconvnet, guided backprop) apply to CReLU too.
    """

    expansion = 2  # how many channels the next layer sees per input channel

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(torch.cat((x, -x), dim=1))  # (B, 2C, ...)

    def summary_counts(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, int]:
        """One summary row, like any activation: no parameters, no connections."""
        return 0, 0


class AVR(nn.Module):
    """Absolute value rectification, `|x|` (its gradient is sign(x), 0 at 0)."""

    activation_kind = "abs"  # not a ReLU: guided backpropagation and the deconvnet rule refuse it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x)


class ScaledTanh(nn.Module):
    """LeCun's squashing function `A·tanh(S·x)` with A = 1.7159 and S = 2/3."""

    amplitude = 1.7159
    slope = 2.0 / 3.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)


_FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky": lambda: nn.LeakyReLU(0.01),
    "tanh": nn.Tanh,
    "scaled_tanh": ScaledTanh,
    "sigmoid": nn.Sigmoid,
    "avr": AVR,
    "crelu": CReLU,
    "none": nn.Identity,
}

ACTIVATIONS: tuple[str, ...] = tuple(_FACTORIES)


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name.

    Args:
        name: one of `ACTIVATIONS`: "relu", "leaky" (slope 0.01), "tanh", "scaled_tanh", "sigmoid",
            "avr", "crelu", or "none" (identity: the network becomes linear).

    Returns:
        A new module (never shared, never in place).

    Raises:
        UnknownNameError: `name` is not one of `ACTIVATIONS`; the message suggests a close match.

    Example:
        >>> act = make_activation("crelu")
        >>> act(torch.ones(1, 3, 2, 2)).shape
        torch.Size([1, 6, 2, 2])
    """
    if name not in _FACTORIES:
        raise unknown_name("activation", name, _FACTORIES)
    return _FACTORIES[name]()


# `nn.init.kaiming_normal_`'s nonlinearity that keeps E[x²] from layer to layer after each activation.
# CReLU keeps ReLU's gain: the next layer's fan-in doubles while each half carries half the energy.
# AVR passes all the energy (|x|² = x²), so ReLU's gain of √2 would double the variance per layer.
_KAIMING: dict[str, str] = {"relu": "relu", "crelu": "relu", "leaky": "leaky_relu", "tanh": "tanh",
                            "scaled_tanh": "tanh", "sigmoid": "sigmoid", "avr": "linear", "none": "linear"}


def kaiming_nonlinearity(name: str) -> str:
    """The `nonlinearity` for `nn.init.kaiming_normal_` that keeps the signal's scale after activation `name`.

    Example:
        >>> nn.init.kaiming_normal_(conv.weight, nonlinearity=kaiming_nonlinearity("avr"))  # gain 1, not √2
    """
    if name not in _KAIMING:
        raise unknown_name("activation", name, _KAIMING)
    return _KAIMING[name]


def channel_multiplier(activation: nn.Module) -> int:
    """How many output channels `activation` makes per input channel (2 for CReLU, else 1)."""
    return int(getattr(activation, "expansion", 1))


__all__ = ["ACTIVATIONS", "AVR", "CReLU", "ScaledTanh", "channel_multiplier", "kaiming_nonlinearity", "make_activation"]
