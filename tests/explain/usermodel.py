"""A model written the way users write theirs, for the explanation tests: Conv–BatchNorm–ReLU(inplace=True),
a residual block that calls one ReLU module twice, `F.relu`, dropout and adaptive average pooling, on 3×32×32.

`functional=False` builds the same network with an `nn.ReLU` module in place of every functional call, so
libraries that only see modules (Captum) can be compared on the parts they handle."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)  # one module, called twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class UserNet(nn.Module):
    def __init__(self, num_classes: int = 10, functional: bool = True) -> None:
        super().__init__()
        self.functional = functional
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.block = Residual(8)
        self.conv = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.stem(x))
        x = self.conv(x)
        x = F.relu(x) if self.functional else self.act(x)  # the call Captum cannot see
        x = self.drop(self.pool(x).flatten(1))
        x = torch.relu(self.fc1(x)) if self.functional else self.act(self.fc1(x))
        return self.fc2(x)


def user_model(seed: int = 0, functional: bool = True) -> UserNet:
    """A UserNet with seeded weights and non-trivial BatchNorm statistics, left in train mode."""
    torch.manual_seed(seed)
    model = UserNet(functional=functional)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.train()
