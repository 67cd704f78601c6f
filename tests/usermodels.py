"""A model as a new user writes one, for tests that point convscope's instruments at "any nn.Module".

`UserNet` has what the zoo models avoid and real networks have: Conv–BatchNorm–`ReLU(inplace=True)`, a
residual block whose one ReLU module runs twice, `F.relu` (no module to hook), dropout, adaptive average
pooling, 3×32×32 input, and neither `features`/`classifier` nor `input_shape`. `user_model()` builds it with
seeded weights and BatchNorm running statistics away from their (0, 1) start, so that train and eval mode
give different outputs.

Example:
    >>> model = user_model()
    >>> model(torch.rand(2, *USER_INPUT)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

USER_INPUT = (3, 32, 32)
USER_CONV = "stem.0"  # the first convolution
USER_REUSED = "block.relu"  # the ReLU module the residual block calls twice
USER_FC = "fc"  # a non-spatial layer, output (N, classes)


class Residual(nn.Module):
    """relu(x + bn(conv(relu(bn(conv(x)))))), with one ReLU module for both calls (as torchvision's ResNet)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class UserNet(nn.Module):
    """`functional=False` calls an `nn.ReLU` module where the default calls `F.relu`, so libraries that only see
    modules (Captum's guided backprop) can be compared on the same weights."""

    def __init__(self, num_classes: int = 10, functional: bool = True) -> None:
        super().__init__()
        self.functional = functional
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.block = Residual(8)
        self.conv = nn.Conv2d(8, 16, 3, stride=2, padding=1)  # (B, 16, 16, 16)
        self.dropout = nn.Dropout(0.25)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)
        self.act = nn.ReLU()  # used only when functional=False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.stem(x))
        x = F.relu(self.conv(x)) if self.functional else self.act(self.conv(x))
        x = self.pool(self.dropout(x)).flatten(1)  # (B, 16)
        return self.fc(x)


def user_model(seed: int = 0, num_classes: int = 10, functional: bool = True) -> UserNet:
    """A `UserNet` with seeded weights and BatchNorm statistics, in train mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the caller's global random state is not used up
        torch.manual_seed(seed)
        model = UserNet(num_classes, functional)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


__all__ = ["USER_CONV", "USER_FC", "USER_INPUT", "USER_REUSED", "Residual", "UserNet", "user_model"]
