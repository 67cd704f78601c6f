"""Shared pieces of the zoo: the features → classifier base module and its input check.

Every zoo model is the FE/DM split of Kuo's RECOS article: a `features` subnetwork (all conv and
pool layers) followed by a `classifier` (the decision layers), both `nn.Sequential` with named
children so analyses address layers by dotted name (`features.conv1`, `classifier.fc1`).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from convscope.errors import InputShapeError


def named_sequential(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    """An `nn.Sequential` whose children have the given names (in order)."""
    return nn.Sequential(OrderedDict(layers))


def fc_head(in_features: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The AlexNet/VGG decision part: flatten, then fc6 and fc7 (ReLU, dropout) and fc8 (Caffe names)."""
    return named_sequential(
        ("flatten", nn.Flatten()),  # (B, C, h, w) -> (B, C·h·w)
        ("fc6", nn.Linear(in_features, hidden)),
        ("relu6", nn.ReLU()),
        ("drop6", nn.Dropout(dropout)),
        ("fc7", nn.Linear(hidden, hidden)),
        ("relu7", nn.ReLU()),
        ("drop7", nn.Dropout(dropout)),
        ("fc8", nn.Linear(hidden, num_classes)),
    )


def _first(value: int | tuple[int, ...]) -> int:
    return value[0] if isinstance(value, tuple) else int(value)


def _out_length(length: int, module: nn.Module) -> int:
    """Output length along H of a conv/pool-like `module` (PyTorch's formula, ceil mode included)."""
    k = _first(module.kernel_size)
    s = _first(getattr(module, "stride", None) or k)
    p = getattr(module, "padding", 0)
    p = 0 if isinstance(p, str) else _first(p)  # "same" keeps the size; "valid" is 0
    d = _first(getattr(module, "dilation", 1))
    span = length + 2 * p - d * (k - 1) - 1
    if getattr(module, "ceil_mode", False):
        out = math.ceil(span / s) + 1
        if (out - 1) * s >= length + p:  # the last window must start inside the input or left padding
            out -= 1
        return out
    return span // s + 1


def min_spatial_size(features: nn.Module, limit: int = 4096) -> int:
    """The smallest square input size for which every conv/pool of `features` has a non-empty output.

    Walks the modules that have a `kernel_size` in registration order (the forward order in the zoo;
    parallel Inception branches keep the size, so their order does not matter).
    """
    layers = [m for m in features.modules() if hasattr(m, "kernel_size")]
    for size in range(1, limit + 1):
        length = size
        for m in layers:
            length = _out_length(length, m)
            if length < 1:
                break
        else:
            return size
    raise ValueError(f"no input size up to {limit} fits these features")


def check_input(
    x: torch.Tensor, name: str, input_shape: tuple[int, int, int], *, fixed_size: bool, min_size: int
) -> None:
    """Raise `InputShapeError` with one helpful sentence unless `x` fits the model.

    Args:
        x: the input batch, expected `(B, C, H, W)`.
        name: the model's name for the message.
        input_shape: the expected `(C, H, W)`.
        fixed_size: the model takes exactly `H×W` (flattened features of a fixed length).
        min_size: otherwise, the smallest `H` and `W` it takes.
    """
    c, h, w = input_shape
    if x.ndim != 4:
        fix = "add the batch dimension with x.unsqueeze(0)" if x.ndim == 3 else "reshape it"
        raise InputShapeError(
            f"{name} expects a batch of shape (B, {c}, {h}, {w}), got a {x.ndim}-D tensor of shape "
            f"{tuple(x.shape)}; {fix}."
        )
    if x.shape[1] != c:
        raise InputShapeError(
            f"{name} expects {c}-channel images of shape (B, {c}, {h}, {w}), got {x.shape[1]} channels in "
            f"{tuple(x.shape)}; convert the images or build the model with in_channels={x.shape[1]}."
        )
    xh, xw = x.shape[2], x.shape[3]
    if fixed_size and (xh, xw) != (h, w):
        raise InputShapeError(
            f"{name} expects {h}×{w} images, shape (B, {c}, {h}, {w}), got {xh}×{xw}; resize or pad the input."
        )
    if not fixed_size and min(xh, xw) < min_size:
        raise InputShapeError(
            f"{name} needs images of at least {min_size}×{min_size} (default {h}×{w}), got {xh}×{xw}; resize the input."
        )


class ConvNet(nn.Module):
    """A CNN as `classifier(features(x))`, checking the input first.

    Attributes:
        features: the conv/pool subnetwork (named children).
        classifier: the decision subnetwork (named children), starting from the features' output.
        input_shape: the default/expected input `(C, H, W)`.
        fixed_size: whether the model takes only `H×W` inputs.
        min_size: the smallest input `H` and `W` a size-flexible model takes.
    """

    def __init__(
        self,
        features: nn.Sequential,
        classifier: nn.Sequential,
        input_shape: tuple[int, int, int],
        *,
        fixed_size: bool,
    ) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.input_shape = input_shape
        self.fixed_size = fixed_size
        self.min_size = input_shape[1] if fixed_size else min_spatial_size(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, type(self).__name__, self.input_shape, fixed_size=self.fixed_size, min_size=self.min_size)
        return self.classifier(self.features(x))
