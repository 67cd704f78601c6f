"""ConvPool-CNN-C and the five variants of Shang et al. (2016), Table 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.models import create_model
from convscope.models.activations import AVR, CReLU
from convscope.models.allconv import PUBLISHED_PARAMS, allconv_variants


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ConvPool-CNN-C (Springenberg et al. 2015, Table 2; Shang et al. 2016, Table 1): (out channels, kernel)
# of conv1..conv8; conv8 is the 1×1 classifier with one map per class.
LAYERS = [(96, 3), (96, 3), (192, 3), (192, 3), (192, 3), (192, 3), (192, 1)]


def params_by_hand(width: float, crelu: bool, in_channels: int = 3, classes: int = 10) -> int:
    """k·k·c_in·c_out + c_out per conv; CReLU doubles the channels each conv passes to the next."""
    total, c_in = 0, in_channels
    for c_out, k in [(round(c * width), k) for c, k in LAYERS] + [(classes, 1)]:
        total += k * k * c_in * c_out + c_out
        c_in = c_out * (2 if crelu else 1)
    return total


def test_variant_parameter_counts_beside_the_paper() -> None:
    measured = {
        name: n_params(create_model("allconv-c", num_classes=10, **kw)) for name, kw in allconv_variants().items()
    }
    report = "; ".join(f"{n}: {measured[n] / 1e6:.2f}M (paper {PUBLISHED_PARAMS[n] / 1e6:.1f}M)" for n in measured)
    print(report)
    assert measured == {
        name: params_by_hand(kw["width"], kw["activation"] == "crelu") for name, kw in allconv_variants().items()
    }
    # the baseline written out: 2688 + 83040 + 166080 + 3·331968 + 37056 + 1930
    assert params_by_hand(1.0, False) == 1_286_698
    for name, count in measured.items():  # the paper's figures, rounded to 0.1M, agree within 10 %
        assert abs(count - PUBLISHED_PARAMS[name]) <= 0.10 * PUBLISHED_PARAMS[name], report


def test_layout() -> None:
    model = create_model("allconv-c")
    f = model.features
    convs = [
        (n, m.in_channels, m.out_channels, m.kernel_size[0]) for n, m in f.named_children() if isinstance(m, nn.Conv2d)
    ]
    assert convs == [
        ("conv1", 3, 96, 3), ("conv2", 96, 96, 3), ("conv3", 96, 192, 3), ("conv4", 192, 192, 3),
        ("conv5", 192, 192, 3), ("conv6", 192, 192, 3), ("conv7", 192, 192, 1), ("conv8", 192, 10, 1),
    ]  # fmt: skip
    assert isinstance(f.pool1, nn.MaxPool2d) and f.pool1.kernel_size == 3 and f.pool1.stride == 2
    assert isinstance(f.relu8, nn.ReLU)
    assert [n for n, _ in model.classifier.named_children()] == ["avgpool", "flatten"]


def test_crelu_and_avr_variants() -> None:
    crelu = create_model("allconv-c", **allconv_variants()["crelu"])
    assert isinstance(crelu.features.relu1, CReLU) and isinstance(crelu.features.relu8, nn.ReLU)
    assert crelu.features.conv2.in_channels == 192 and crelu.features.conv8.in_channels == 384
    half = create_model("allconv-c", **allconv_variants()["crelu-half"])
    assert half.features.conv1.out_channels == 48 and half.features.conv3.out_channels == 96
    assert half.features.conv3.in_channels == 96
    avr = create_model("allconv-c", **allconv_variants()["avr"])
    assert isinstance(avr.features.relu7, AVR)
    assert create_model("allconv-c", **allconv_variants()["double"]).features.conv7.out_channels == 384


@pytest.mark.parametrize("size", [32, 28])
def test_forward_cifar_and_fashion_mnist(size: int) -> None:
    c = 3 if size == 32 else 1
    model = create_model("allconv-c", in_channels=c, num_classes=100, **allconv_variants()["crelu-half"])
    out = model(torch.randn(2, c, size, size))
    assert out.shape == (2, 100) and (out >= 0).all()  # ReLU after conv8, as in the paper
    raw = create_model("allconv-c", in_channels=c, final_relu=False)
    assert not hasattr(raw.features, "relu8")


def test_dropout_option() -> None:
    model = create_model("allconv-c", dropout=0.5)
    assert isinstance(model.features.drop1, nn.Dropout) and isinstance(model.features.drop2, nn.Dropout)
    assert not hasattr(create_model("allconv-c").features, "drop1")


@pytest.mark.parametrize("variant", list(allconv_variants()))
def test_initial_signal_keeps_its_scale_through_the_layers(variant):
    from convscope.hooks import activations

    torch.manual_seed(0)
    kwargs = {**allconv_variants()[variant], "width": allconv_variants()[variant]["width"] * 0.25}
    model = create_model("allconv-c", in_channels=1, num_classes=10, **kwargs)
    names = [f"features.conv{i}" for i in range(1, 8)]
    acts = activations(model, torch.randn(32, 1, 28, 28), names)
    stds = [float(acts[n].std()) for n in names]
    assert max(stds) / min(stds) < 4, stds  # AVR at ReLU's Kaiming gain grew about 10x over these layers
