"""ConvPool-CNN-C (Springenberg, Dosovitskiy, Brox, Riedmiller, "Striving for Simplicity: The All
Convolutional Net", ICLR 2015 workshop, Table 1 model C) as the CIFAR baseline of Shang et al.,
"Understanding and Improving Convolutional Neural Networks via Concatenated Rectified Linear
Units" (ICML 2016, §3.1 and Table 1; docs/REFERENCE.md §4).

Layers (kernel × in × out): conv1 3×3×3×96, conv2 3×3×96×96, max pool 3/2, conv3 3×3×96×192,
conv4 and conv5 3×3×192×192, max pool 3/2, conv6 3×3×192×192, conv7 1×1×192×192,
conv8 1×1×192×classes, global average pool. The 3×3 convs pad by 1 and the pools pad by 1 (the
paper gives no padding; this one halves the maps exactly: 32 → 16 → 8, or 28 → 14 → 7 for
Fashion-MNIST).

Variants (`allconv_variants()`): `activation` replaces the ReLU after conv1…conv7 ("crelu" doubles
the channels each next layer sees, with the same filter counts); `width` scales every filter count
(double = 2, CReLU half = 0.5 with "crelu"). conv8 is followed by a plain ReLU (`relu8`) in every
variant: Springenberg's model C has "1×1 conv. 10 ReLU" before the global average, and Shang et al.
keep ReLU on conv8 for the CReLU model. `final_relu=False` drops it (raw class scores).
"""

from __future__ import annotations

from torch import nn

from convscope.models._common import ConvNet, named_sequential
from convscope.models.activations import channel_multiplier, kaiming_nonlinearity, make_activation
from convscope.models.registry import register_model

# (name, base filters, kernel) of conv1…conv7; "pool" is the 3×3 stride-2 max pool.
LAYERS: tuple[tuple[str, int, int] | str, ...] = (
    ("conv1", 96, 3),
    ("conv2", 96, 3),
    "pool1",
    ("conv3", 192, 3),
    ("conv4", 192, 3),
    ("conv5", 192, 3),
    "pool2",
    ("conv6", 192, 3),
    ("conv7", 192, 1),
)

# Shang et al. (2016), Table 1: the five CIFAR variants and their published parameter counts.
PUBLISHED_PARAMS: dict[str, float] = {
    "baseline": 1.4e6,
    "double": 5.6e6,
    "avr": 1.4e6,
    "crelu": 2.8e6,
    "crelu-half": 0.7e6,
}


def allconv_variants() -> dict[str, dict[str, object]]:
    """Keyword arguments of `allconv-c` for the five variants of Shang et al. (2016), Table 1.

    Example:
        >>> for name, kwargs in allconv_variants().items():
        ...     model = create_model("allconv-c", num_classes=10, **kwargs)
    """
    return {
        "baseline": {"activation": "relu", "width": 1.0},
        "double": {"activation": "relu", "width": 2.0},
        "avr": {"activation": "avr", "width": 1.0},
        "crelu": {"activation": "crelu", "width": 1.0},
        "crelu-half": {"activation": "crelu", "width": 0.5},
    }


class AllConvNet(ConvNet):
    """ConvPool-CNN-C with a choice of activation and width.

    Args:
        in_channels: input channels.
        num_classes: output classes (the filters of conv8).
        activation: after conv1…conv7: "relu", "crelu", "avr" or "leaky" (any `make_activation`
            name works). The modules are named `relu1`…`relu7` whichever activation they are.
        width: multiplier on every filter count of conv1…conv7 (rounded to an integer).
        final_relu: keep the ReLU after conv8 (`relu8`), as both papers do.
        dropout: if above 0, dropout after each max pool (`drop1`, `drop2`), as in Springenberg et al.

    The classifier is the global average pool and a flatten; convs are Kaiming-normal initialised.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        activation: str = "relu",
        width: float = 1.0,
        final_relu: bool = True,
        dropout: float = 0.0,
    ) -> None:
        layers: list[tuple[str, nn.Module]] = []
        channels = in_channels
        for item in LAYERS:
            if isinstance(item, str):
                layers.append((item, nn.MaxPool2d(3, stride=2, padding=1)))
                if dropout > 0:
                    layers.append((item.replace("pool", "drop"), nn.Dropout(dropout)))
                continue
            name, filters, kernel = item
            out = max(1, round(filters * width))
            act = make_activation(activation)
            layers.append((name, nn.Conv2d(channels, out, kernel, padding=kernel // 2)))
            layers.append((name.replace("conv", "relu"), act))
            channels = out * channel_multiplier(act)  # CReLU doubles what the next layer sees
        layers.append(("conv8", nn.Conv2d(channels, num_classes, 1)))
        if final_relu:
            layers.append(("relu8", nn.ReLU()))
        classifier = named_sequential(
            ("avgpool", nn.AdaptiveAvgPool2d((1, 1))),
            ("flatten", nn.Flatten()),  # (B, classes, 1, 1) -> (B, classes)
        )
        super().__init__(named_sequential(*layers), classifier, (in_channels, 32, 32), fixed_size=False)
        # Kaiming-normal with the gain of the activation that follows (√2 for ReLU and CReLU, 1 for AVR),
        # so the signal keeps its scale through all eight layers: AVR at ReLU's gain grows 2x per layer.
        for name, m in layers:
            if isinstance(m, nn.Conv2d):
                follows = activation if name != "conv8" else "relu" if final_relu else "none"
                nn.init.kaiming_normal_(m.weight, nonlinearity=kaiming_nonlinearity(follows))
                nn.init.zeros_(m.bias)


@register_model("allconv-c")
def allconv_c(**kwargs: object) -> AllConvNet:
    """ConvPool-CNN-C for 32×32 (or 28×28) images; see `AllConvNet` and `allconv_variants()`.

    Example:
        >>> model = create_model("allconv-c", num_classes=10, **allconv_variants()["crelu-half"])
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return AllConvNet(**kwargs)
