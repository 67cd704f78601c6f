"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015, Table 1 configurations A, B, D, E) from a config table, timm-style.

Stacks of 3×3 convolutions (pad 1, so a block keeps the size) separated by 2×2 max pools, then an
adaptive 7×7 average pool (the reference PyTorch layout, so any input of at least 32 pixels works)
and three fully connected layers. VGG-16 has 138,357,544 parameters for 1000 classes; it counts 16
layers under docs/REFERENCE.md §1 (13 conv + 3 fc).

Layer names follow the paper and Caffe: `conv{block}_{i}` with `relu{block}_{i}`, `pool{block}`,
then `fc6`, `fc7`, `fc8`.
"""

from __future__ import annotations

from torch import nn

from convscope.models._common import ConvNet, fc_head, named_sequential
from convscope.models.registry import register_model

# Filters per conv layer; "M" is a 2×2 max pool ending a block.
CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}  # fmt: skip


class VGG(ConvNet):
    """A VGG network from a config row.

    Args:
        config: filters per conv layer, "M" for a max pool ending a block.
        in_channels: input channels.
        num_classes: output classes.
        dropout: dropout probability after fc6 and fc7.
        hidden: width of fc6 and fc7.

    Initialised as the reference implementation: convs Kaiming-normal (fan-out), fc normal(0, 0.01),
    biases zero.
    """

    def __init__(
        self,
        config: tuple[int | str, ...],
        *,
        in_channels: int = 3,
        num_classes: int = 1000,
        dropout: float = 0.5,
        hidden: int = 4096,
    ) -> None:
        layers: list[tuple[str, nn.Module]] = []
        channels, block, index = in_channels, 1, 1
        for item in config:
            if item == "M":
                layers.append((f"pool{block}", nn.MaxPool2d(2, stride=2)))
                block, index = block + 1, 1
                continue
            layers.append((f"conv{block}_{index}", nn.Conv2d(channels, int(item), 3, padding=1)))
            layers.append((f"relu{block}_{index}", nn.ReLU()))
            channels, index = int(item), index + 1
        layers.append(("avgpool", nn.AdaptiveAvgPool2d((7, 7))))
        features = named_sequential(*layers)
        classifier = fc_head(channels * 7 * 7, hidden, num_classes, dropout)
        super().__init__(features, classifier, (in_channels, 224, 224), fixed_size=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


@register_model("vgg11")
def vgg11(**kwargs: object) -> VGG:
    """VGG-11 (configuration A)."""
    return VGG(CONFIGS["vgg11"], **kwargs)


@register_model("vgg13")
def vgg13(**kwargs: object) -> VGG:
    """VGG-13 (configuration B)."""
    return VGG(CONFIGS["vgg13"], **kwargs)


@register_model("vgg16")
def vgg16(**kwargs: object) -> VGG:
    """VGG-16 (configuration D), 138,357,544 parameters for 1000 classes.

    Example:
        >>> model = create_model("vgg16", num_classes=10)
        >>> model.features.conv5_3
        Conv2d(512, 512, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """
    return VGG(CONFIGS["vgg16"], **kwargs)


@register_model("vgg19")
def vgg19(**kwargs: object) -> VGG:
    """VGG-19 (configuration E)."""
    return VGG(CONFIGS["vgg19"], **kwargs)
