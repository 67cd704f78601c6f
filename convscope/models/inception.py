"""GoogLeNet and its Inception (v1) block (Szegedy et al., "Going Deeper with Convolutions",
CVPR 2015, Table 1), without the auxiliary classifiers.

The layout is the reference PyTorch one, which fixes the canonical count of 6,624,904 parameters
for 1000 classes (docs/REFERENCE.md §7):

- every conv is a `BasicConv2d`: conv without bias, BatchNorm (eps 0.001), ReLU (the paper predates
  batch normalisation; its convs had biases);
- the "5×5" branch of every Inception block uses a 3×3 kernel (pad 1). This is a known quirk of
  the reference implementation, kept for compatibility with its pretrained weights; pass
  `kernel5x5=5` for the paper's true 5×5 branch (then the count is 7,005,832);
- max pools use ceil mode, as in Caffe.

GoogLeNet is 22 layers deep under docs/REFERENCE.md §1 (counting the conv and fc layers on the longest
path: 3 stem convs, 2 per Inception block, the final fc), which `summarize(model).depth` reproduces.
"""

from __future__ import annotations

import torch
from torch import nn

from convscope.models._common import ConvNet, named_sequential
from convscope.models.registry import register_model

# Inception blocks of the paper's Table 1: name → (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj).
# A max pool ("pool") halves the maps between stages 3, 4 and 5.
BLOCKS: tuple[tuple[str, tuple[int, int, int, int, int, int]] | str, ...] = (
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    "pool3",
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    "pool4",
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
)


class BasicConv2d(nn.Module):
    """Conv (no bias) → BatchNorm(eps=0.001) → ReLU, the reference GoogLeNet's unit."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class InceptionV1(nn.Module):
    """The Inception block: four parallel branches concatenated along channels.

    Branches: `branch1` 1×1; `branch2` 1×1 reduce → 3×3; `branch3` 1×1 reduce → "5×5" (a 3×3
    kernel by default, see the module docstring); `branch4` 3×3 max pool (stride 1) → 1×1 projection.
    Every branch keeps the spatial size.

    Args:
        in_channels: input channels.
        ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj: the paper's Table 1 columns.
        kernel5x5: kernel of the "5×5" branch: 3 (reference layout, default) or 5 (the paper).
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        *,
        kernel5x5: int = 3,
    ) -> None:
        super().__init__()
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = named_sequential(
            ("reduce", BasicConv2d(in_channels, ch3x3red, 1)), ("conv", BasicConv2d(ch3x3red, ch3x3, 3))
        )
        self.branch3 = named_sequential(
            ("reduce", BasicConv2d(in_channels, ch5x5red, 1)), ("conv", BasicConv2d(ch5x5red, ch5x5, kernel5x5))
        )
        self.branch4 = named_sequential(
            ("pool", nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)),
            ("proj", BasicConv2d(in_channels, pool_proj, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x))
        return torch.cat(branches, dim=1)  # (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


class GoogLeNet(ConvNet):
    """GoogLeNet (Inception v1) without auxiliary heads.

    Args:
        in_channels: input channels.
        num_classes: output classes.
        dropout: dropout probability before the fc layer (0.2 in the reference layout; 0.4 in the paper).
        kernel5x5: kernel of the "5×5" branches (3, the reference quirk, or 5, the paper).

    Initialised as the reference implementation: conv and fc weights truncated normal (std 0.01,
    cut at ±2), BatchNorm weight 1 and bias 0, fc bias 0.
    """

    def __init__(
        self, *, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.2, kernel5x5: int = 3
    ) -> None:
        layers: list[tuple[str, nn.Module]] = [
            ("conv1", BasicConv2d(in_channels, 64, 7, stride=2)),
            ("pool1", nn.MaxPool2d(3, stride=2, ceil_mode=True)),
            ("conv2", BasicConv2d(64, 64, 1)),
            ("conv3", BasicConv2d(64, 192, 3)),
            ("pool2", nn.MaxPool2d(3, stride=2, ceil_mode=True)),
        ]
        channels = 192
        for block in BLOCKS:
            if isinstance(block, str):  # pool3 is 3×3/2, pool4 2×2/2, as in the paper
                kernel = 3 if block == "pool3" else 2
                layers.append((block, nn.MaxPool2d(kernel, stride=2, ceil_mode=True)))
                continue
            name, widths = block
            inception = InceptionV1(channels, *widths, kernel5x5=kernel5x5)
            layers.append((name, inception))
            channels = inception.out_channels
        layers.append(("avgpool", nn.AdaptiveAvgPool2d((1, 1))))
        classifier = named_sequential(
            ("flatten", nn.Flatten()),  # (B, 1024, 1, 1) -> (B, 1024)
            ("dropout", nn.Dropout(dropout)),
            ("fc", nn.Linear(channels, num_classes)),
        )
        super().__init__(named_sequential(*layers), classifier, (in_channels, 224, 224), fixed_size=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.01, a=-2, b=2)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)


@register_model("googlenet")
def googlenet(**kwargs: object) -> GoogLeNet:
    """GoogLeNet without auxiliary heads, 6,624,904 parameters for 1000 classes.

    Example:
        >>> model = create_model("googlenet", num_classes=10)
        >>> model.features.inception4a.branch2.conv.conv
        Conv2d(96, 208, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
    """
    return GoogLeNet(**kwargs)
