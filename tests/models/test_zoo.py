"""Every registered model, through the registry: structure, forward shapes, canonical sizes, errors.

Big models are built on the meta device (no memory, no init cost): shapes and parameter counts
need no real weights. Only models under 10M parameters run a real forward and backward pass.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.errors import InputShapeError, UnknownNameError
from convscope.models import create_model, list_models
from convscope.models.summary import summarize

NAMES = list_models()
SMALL = 10_000_000  # models under this many parameters also run for real


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_zoo_has_every_model() -> None:
    expected = {"lenet5", "lenet5-classic", "alexnet", "zfnet", "vgg11", "vgg13", "vgg16", "vgg19",
                "googlenet", "allconv-c"}  # fmt: skip
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_features_classifier_and_named_layers(name: str) -> None:
    model = meta_model(name, num_classes=7)
    assert isinstance(model.features, nn.Sequential) and isinstance(model.classifier, nn.Sequential)
    c, h, w = model.input_shape
    assert c >= 1 and h >= 1 and w >= 1
    for part in (model.features, model.classifier):
        names = [n for n, _ in part.named_children()]
        assert names and not any(n.isdigit() for n in names), names
    for dotted, module in model.named_modules():
        assert model.get_submodule(dotted) is module


@pytest.mark.parametrize("name", NAMES)
def test_no_module_reused_and_no_inplace(name: str) -> None:
    model = meta_model(name)
    modules = [m for _, m in model.named_modules(remove_duplicate=False)]
    assert len({id(m) for m in modules}) == len(modules), "a module is registered under two names"
    assert not [m for m in modules if getattr(m, "inplace", False)], "in-place activation"
    # Each leaf runs exactly once per forward pass (a reused ReLU would give a duplicate row).
    rows = [r.name for r in summarize(model).rows]
    assert len(rows) == len(set(rows))
    leaves = {n for n, m in model.named_modules() if next(m.children(), None) is None}
    composite = [n for n, m in model.named_modules() if hasattr(m, "summary_counts")]
    inside = {n for n in leaves for p in composite if n.startswith(p + ".")}
    assert set(rows) == leaves - inside


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_on_meta(name: str) -> None:
    model = meta_model(name, num_classes=7)
    assert model(torch.zeros(2, *model.input_shape, device="meta")).shape == (2, 7)
    gray = meta_model(name, in_channels=1, num_classes=3)
    assert gray(torch.zeros(1, 1, *model.input_shape[1:], device="meta")).shape == (1, 3)


@pytest.mark.parametrize("name", NAMES)
def test_small_models_forward_and_backward_for_real(name: str) -> None:
    if n_params(meta_model(name, num_classes=5)) > SMALL:
        pytest.skip("big model: checked on the meta device only")
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    c, h, w = model.input_shape
    size = (h, w) if model.fixed_size else (max(model.min_size, 32),) * 2  # small input, cheap
    x = torch.randn(2, c, *size)
    out = model(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


CANONICAL = [
    ("alexnet", {}, 61_100_840),
    ("alexnet", {"groups": 2}, 60_965_224),
    ("vgg16", {}, 138_357_544),
    ("googlenet", {}, 6_624_904),
    # conv 5×5: 1→6, 6→16; fc 400→120→84→10; weights + biases
    ("lenet5", {}, (25 * 6 + 6) + (150 * 16 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)),
    # LeCun et al. 1998 §II.B, C1 S2 C3 S4 C5 F6, plus the 84→10 output layer
    ("lenet5-classic", {}, 156 + 12 + 1_516 + 32 + 48_120 + 10_164 + (84 * 10 + 10)),
    ("lenet5-classic", {"rbf": True}, 156 + 12 + 1_516 + 32 + 48_120 + 10_164),  # fixed RBF prototypes
]


@pytest.mark.parametrize(("name", "kwargs", "expected"), CANONICAL)
def test_canonical_parameter_counts(name: str, kwargs: dict, expected: int) -> None:
    # docs/REFERENCE.md §7; LeNet-5: "about 60,000" (60,000 exactly with the RBF output).
    assert n_params(meta_model(name, num_classes=10 if name.startswith("lenet") else 1000, **kwargs)) == expected


def test_alexnet_two_groups_layout() -> None:
    model = meta_model("alexnet", groups=2)
    f = model.features
    assert [f.get_submodule(f"conv{i}").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    assert [f.get_submodule(f"conv{i}").out_channels for i in range(1, 6)] == [96, 256, 384, 384, 256]
    assert isinstance(f.norm1, nn.LocalResponseNorm) and isinstance(f.norm2, nn.LocalResponseNorm)


def test_zfnet_first_layers() -> None:
    model = meta_model("zfnet")
    assert model.features.conv1.kernel_size == (7, 7) and model.features.conv1.stride == (2, 2)
    assert model.features.conv2.kernel_size == (5, 5) and model.features.conv2.stride == (2, 2)
    shapes = {r.name: r.output_shape[1] for r in summarize(model).rows if len(r.output_shape) == 3}
    # Zeiler & Fergus, Fig. 3: 110 → 55 → 26 → 13 → 13 → 6.
    assert [shapes[f"features.{n}"] for n in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5")] == [
        110, 55, 26, 13, 13, 6,
    ]  # fmt: skip


def test_googlenet_five_by_five_quirk() -> None:
    model = meta_model("googlenet")
    assert model.features.inception3a.branch3.conv.conv.kernel_size == (3, 3)
    true5 = meta_model("googlenet", kernel5x5=5)
    assert true5.features.inception3a.branch3.conv.conv.kernel_size == (5, 5)
    assert true5(torch.zeros(1, 3, 224, 224, device="meta")).shape == (1, 1000)


def test_vgg_layer_names() -> None:
    model = meta_model("vgg16")
    convs = [n for n, m in model.features.named_children() if isinstance(m, nn.Conv2d)]
    assert convs[:3] == ["conv1_1", "conv1_2", "conv2_1"] and convs[-1] == "conv5_3" and len(convs) == 13
    assert [n for n, m in model.classifier.named_children() if isinstance(m, nn.Linear)] == ["fc6", "fc7", "fc8"]


@pytest.mark.parametrize("name", NAMES)
def test_wrong_input_raises_helpful_error(name: str) -> None:
    model = meta_model(name)
    c, h, w = model.input_shape
    with pytest.raises(InputShapeError, match="unsqueeze"):
        model(torch.zeros(c, h, w, device="meta"))
    with pytest.raises(InputShapeError, match=f"in_channels={c + 1}"):
        model(torch.zeros(1, c + 1, h, w, device="meta"))
    small = model.min_size - 1
    if model.fixed_size:
        with pytest.raises(InputShapeError, match=f"{h}×{w}"):
            model(torch.zeros(1, c, h + 4, w + 4, device="meta"))
    elif small >= 1:
        with pytest.raises(InputShapeError, match=f"at least {model.min_size}×{model.min_size}"):
            model(torch.zeros(1, c, small, small, device="meta"))


def test_input_error_message_is_one_sentence() -> None:
    model = create_model("lenet5")
    with pytest.raises(InputShapeError) as info:
        model(torch.zeros(1, 1, 32, 32))
    message = str(info.value)
    assert message == "LeNet5 expects 28×28 images, shape (B, 1, 28, 28), got 32×32; resize or pad the input."


def test_flexible_models_accept_other_sizes() -> None:
    assert meta_model("vgg11")(torch.zeros(1, 3, 64, 80, device="meta")).shape == (1, 1000)
    assert create_model("allconv-c", in_channels=1)(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_unknown_model_suggests_close_match() -> None:
    with pytest.raises(UnknownNameError, match="'lenet5'"):
        create_model("lenet")
    with pytest.raises(UnknownNameError, match="vgg16"):
        create_model("vgg-16")


def test_unknown_options_raise() -> None:
    with pytest.raises(UnknownNameError, match="'max'"):
        create_model("lenet5", pool="maxx")
    with pytest.raises(UnknownNameError, match="groups"):
        create_model("alexnet", groups=3)
    with pytest.raises(TypeError, match="vgg16 has no argument 'bogus': it takes in_channels, num_classes"):
        create_model("vgg16", bogus=1)  # a UserError for the command line, still a TypeError as Python's own
