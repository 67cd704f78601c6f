"""AlexNet (Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012) and ZFNet (Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014, Fig. 3), from one spec table.

- `alexnet` (`groups=1`, default): the reference PyTorch layout, 64-192-384-256-256 filters with an
  adaptive 6×6 average pool; 61,100,840 parameters for 1000 classes.
- `alexnet` with `groups=2`: the paper's two-GPU layout, 96-256-384-384-256 filters, conv2/conv4/
  conv5 split into 2 groups (each half sees only its GPU's half of the maps), local response
  normalisation after conv1 and conv2; 60,965,224 parameters for 1000 classes.
- `zfnet`: conv1 7×7 stride 2 and conv2 5×5 stride 2 (instead of 11×11/4 and 5×5/1), after the
  deconvnet visualisations showed aliasing and dead filters; 3×3 pooling in ceil mode, as in Caffe,
  so a 224×224 input gives the paper's 110 → 55 → 26 → 13 → 13 → 6 maps.

Input 3×224×224. The paper's 224 with an unpadded 11×11/4 conv1 does not give its 55×55 maps (that
needs 227); like the reference layout, conv1 pads by 2 so 224 gives 55. The adaptive 6×6 pool
makes every variant accept any input of at least `model.min_size` pixels.
LRN uses k=2, n=5, α=1e-4, β=0.75 with PyTorch's (and Caffe's) α/n convention.
Layer names follow Caffe: `conv1`…`conv5`, `fc6`, `fc7`, `fc8`, with `relu`/`norm`/`pool`/`drop`
named after their layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from convscope.errors import unknown_name
from convscope.models._common import ConvNet, fc_head, named_sequential
from convscope.models.registry import register_model


@dataclass(frozen=True)
class ConvSpec:
    """One conv layer: filters, kernel, stride, padding, groups, and what follows its ReLU."""

    filters: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    lrn: bool = False  # local response normalisation after the ReLU
    pool: bool = False  # 3×3 stride-2 max pooling after that


ALEXNET: tuple[ConvSpec, ...] = (
    ConvSpec(64, 11, stride=4, padding=2, pool=True),
    ConvSpec(192, 5, padding=2, pool=True),
    ConvSpec(384, 3, padding=1),
    ConvSpec(256, 3, padding=1),
    ConvSpec(256, 3, padding=1, pool=True),
)

ALEXNET_TWO_GROUPS: tuple[ConvSpec, ...] = (
    ConvSpec(96, 11, stride=4, padding=2, lrn=True, pool=True),
    ConvSpec(256, 5, padding=2, groups=2, lrn=True, pool=True),
    ConvSpec(384, 3, padding=1),  # conv3 sees both GPUs' maps
    ConvSpec(384, 3, padding=1, groups=2),
    ConvSpec(256, 3, padding=1, groups=2, pool=True),
)

ZFNET: tuple[ConvSpec, ...] = (
    ConvSpec(96, 7, stride=2, padding=1, lrn=True, pool=True),
    ConvSpec(256, 5, stride=2, lrn=True, pool=True),
    ConvSpec(384, 3, padding=1),
    ConvSpec(384, 3, padding=1),
    ConvSpec(256, 3, padding=1, pool=True),
)


class AlexNet(ConvNet):
    """An AlexNet-shaped network: five conv layers from `specs`, 6×6 pooling, three fc layers.

    Args:
        specs: the five conv layers.
        in_channels: input channels.
        num_classes: output classes.
        dropout: dropout probability after fc6 and fc7.
        ceil_mode: max pooling rounds its output size up (ZFNet, Caffe) instead of down.
        hidden: width of fc6 and fc7.
    """

    def __init__(
        self,
        specs: tuple[ConvSpec, ...],
        *,
        in_channels: int = 3,
        num_classes: int = 1000,
        dropout: float = 0.5,
        ceil_mode: bool = False,
        hidden: int = 4096,
    ) -> None:
        layers: list[tuple[str, nn.Module]] = []
        channels = in_channels
        for i, spec in enumerate(specs, start=1):
            conv = nn.Conv2d(channels, spec.filters, spec.kernel, spec.stride, spec.padding, groups=spec.groups)
            layers += [(f"conv{i}", conv), (f"relu{i}", nn.ReLU())]
            if spec.lrn:
                layers.append((f"norm{i}", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)))
            if spec.pool:
                layers.append((f"pool{i}", nn.MaxPool2d(3, stride=2, ceil_mode=ceil_mode)))
            channels = spec.filters
        layers.append(("avgpool", nn.AdaptiveAvgPool2d((6, 6))))
        features = named_sequential(*layers)
        classifier = fc_head(channels * 6 * 6, hidden, num_classes, dropout)
        super().__init__(features, classifier, (in_channels, 224, 224), fixed_size=False)


@register_model("alexnet")
def alexnet(*, groups: int = 1, **kwargs: object) -> AlexNet:
    """AlexNet: `groups=1` the reference single-tower layout, `groups=2` the paper's two-GPU layout.

    Example:
        >>> model = create_model("alexnet", groups=2)
        >>> sum(p.numel() for p in model.parameters())
        60965224
    """
    layouts = {1: ALEXNET, 2: ALEXNET_TWO_GROUPS}
    if groups not in layouts:
        raise unknown_name("AlexNet groups", str(groups), ["1", "2"])
    return AlexNet(layouts[groups], **kwargs)


@register_model("zfnet")
def zfnet(*, ceil_mode: bool = True, **kwargs: object) -> AlexNet:
    """ZFNet (Zeiler & Fergus 2014): AlexNet with conv1 7×7/2 and conv2 5×5/2."""
    return AlexNet(ZFNET, ceil_mode=ceil_mode, **kwargs)
