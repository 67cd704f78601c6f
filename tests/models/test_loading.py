"""Model references (zoo, file:factory, module:factory) and weights (safetensors, state dicts, torchvision keys)."""

from __future__ import annotations

import textwrap

import pytest
import torch
from safetensors.torch import save_file

from convscope.errors import UserError
from convscope.models import create_model
from convscope.models.inception import BLOCKS
from convscope.models.loading import build, load_model, load_weights, read_state_dict


def test_zoo_file_and_module_references(tmp_path):
    assert type(build("lenet5")).__name__ == "LeNet5"
    f = tmp_path / "mynets.py"
    f.write_text(textwrap.dedent("""
        from torch import nn
        def tiny(num_classes=10):
            return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, num_classes))
        def noargs():
            return nn.Linear(2, 2)
    """))
    m = build(f"{f}:tiny", num_classes=3, in_channels=1)  # in_channels is not tiny's: left out
    assert m[-1].out_features == 3
    assert isinstance(build(f"{f}:noargs", num_classes=3), torch.nn.Linear)
    assert build("torch.nn:Identity").__class__ is torch.nn.Identity


@pytest.mark.parametrize(("ref", "words"), [
    ("lenet", "did you mean"),
    ("no/such/file.py:f", "does not exist"),
    ("no_such_module_xyz:f", "Cannot import module"),
    ("torch.nn:does_not_exist", "has no factory"),
    ("torch.nn:functional", "has no factory"),
    ("lenet5:", "not a zoo name"),
])
def test_bad_references_are_one_sentence(ref, words):
    with pytest.raises(UserError, match=words):
        build(ref)


def test_a_factory_that_fails_or_returns_something_else(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("def boom():\n    raise ValueError('no GPU here')\ndef number():\n    return 3\n")
    with pytest.raises(UserError, match="failed with ValueError: no GPU here"):
        build(f"{f}:boom")
    with pytest.raises(UserError, match="returned int, not an nn.Module"):
        build(f"{f}:number")
    g = tmp_path / "broken.py"
    g.write_text("import nothing_like_this\n")
    with pytest.raises(UserError, match="Importing .*broken.py failed with ModuleNotFoundError"):
        build(f"{g}:f")


def test_weights_round_trip_through_safetensors_and_state_dicts(tmp_path):
    torch.manual_seed(0)
    src = create_model("lenet5")
    save_file(src.state_dict(), tmp_path / "w.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "ckpt.pt")
    x = torch.rand(2, 1, 28, 28)
    for name in ("w.safetensors", "ckpt.pt"):
        m = load_model("lenet5", weights=tmp_path / name).eval()
        torch.testing.assert_close(m(x), src.eval()(x))


def test_unsafe_or_unfit_weights_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"w": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="not a state dict torch can read safely"):
        read_state_dict(tmp_path / "evil.pt")
    state = create_model("lenet5", num_classes=5).state_dict()
    torch.save(state, tmp_path / "five.pt")
    head = r"'classifier.fc3.weight' has shape \(5, 84\) where the model has \(10, 84\).*num_classes"
    with pytest.raises(UserError, match=head):
        load_weights(create_model("lenet5"), tmp_path / "five.pt")
    torch.save(create_model("allconv-c", width=0.125).state_dict(), tmp_path / "allconv.pt")
    with pytest.raises(UserError, match=r"'features.conv1.weight' has shape \(12, 3, 3, 3\) .* for another model"):
        load_weights(create_model("lenet5"), tmp_path / "allconv.pt")
    with pytest.raises(UserError, match="does not exist"):
        read_state_dict(tmp_path / "missing.pt")


# torchvision's AlexNet and VGG heads are 4096 wide with 1000 classes; the tests keep every key and every
# conv shape but shrink the heads (HIDDEN, CLASSES), so `make test` does not write half a gigabyte.
HIDDEN, CLASSES = 64, 10


def _torchvision_alexnet() -> dict[str, torch.Tensor]:
    """torchvision.models.alexnet's state dict layout (Krizhevsky's one-GPU variant), random values."""
    convs = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    fcs = {1: (HIDDEN, 256 * 6 * 6), 4: (HIDDEN, HIDDEN), 6: (CLASSES, HIDDEN)}
    state = {}
    for part, layers in (("features", convs), ("classifier", fcs)):
        for i, shape in layers.items():
            state[f"{part}.{i}.weight"] = torch.randn(shape) * 0.01
            state[f"{part}.{i}.bias"] = torch.randn(shape[0]) * 0.01
    return state


def _torchvision_vgg16() -> dict[str, torch.Tensor]:
    widths = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    state, i, c = {}, 0, 3
    for w in widths:
        if w == "M":
            i += 1
            continue
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = torch.randn(w, c, 3, 3) * 0.01, torch.randn(w)
        i, c = i + 2, w
    for j, shape in ((0, (HIDDEN, 25088)), (3, (HIDDEN, HIDDEN)), (6, (CLASSES, HIDDEN))):
        state[f"classifier.{j}.weight"] = torch.randn(shape) * 0.01
        state[f"classifier.{j}.bias"] = torch.randn(shape[0])
    return state


def _torchvision_googlenet() -> dict[str, torch.Tensor]:
    """torchvision.models.googlenet's keys (with its auxiliary heads, as the pretrained file has them)."""
    state = {}

    def basic(prefix, cin, cout, k):
        state[f"{prefix}.conv.weight"] = torch.randn(cout, cin, k, k) * 0.01
        for b in ("weight", "bias", "running_mean", "running_var"):
            state[f"{prefix}.bn.{b}"] = torch.rand(cout) + (0.5 if b == "running_var" else 0)
        state[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)

    basic("conv1", 3, 64, 7)
    basic("conv2", 64, 64, 1)
    basic("conv3", 64, 192, 3)
    c = 192
    for item in BLOCKS:
        if isinstance(item, str):
            continue
        name, (b1, r3, b3, r5, b5, pp) = item
        basic(f"{name}.branch1", c, b1, 1)
        basic(f"{name}.branch2.0", c, r3, 1)
        basic(f"{name}.branch2.1", r3, b3, 3)
        basic(f"{name}.branch3.0", c, r5, 1)
        basic(f"{name}.branch3.1", r5, b5, 3)  # torchvision's "5×5" branch is 3×3
        basic(f"{name}.branch4.1", c, pp, 1)
        c = b1 + b3 + b5 + pp
    for aux, cin in (("aux1", 512), ("aux2", 528)):
        basic(f"{aux}.conv", cin, 128, 1)
        state[f"{aux}.fc1.weight"], state[f"{aux}.fc1.bias"] = torch.randn(1024, 2048), torch.randn(1024)
        state[f"{aux}.fc2.weight"], state[f"{aux}.fc2.bias"] = torch.randn(1000, 1024), torch.randn(1000)
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 1024) * 0.01, torch.randn(1000)
    return state


@pytest.mark.parametrize(("name", "make", "pairs"), [
    ("alexnet", _torchvision_alexnet, {"features.0.weight": "features.conv1.weight",
                                       "features.10.bias": "features.conv5.bias",
                                       "classifier.6.weight": "classifier.fc8.weight"}),
    ("vgg16", _torchvision_vgg16, {"features.0.weight": "features.conv1_1.weight",
                                   "features.28.weight": "features.conv5_3.weight",
                                   "classifier.3.bias": "classifier.fc7.bias"}),
    ("googlenet", _torchvision_googlenet, {"conv1.conv.weight": "features.conv1.conv.weight",
                                           "inception4e.branch3.1.bn.running_var":
                                               "features.inception4e.branch3.conv.bn.running_var",
                                           "inception5b.branch4.1.conv.weight":
                                               "features.inception5b.branch4.proj.conv.weight",
                                           "fc.bias": "classifier.fc.bias"}),
])
def test_torchvision_format_weights_load_into_the_zoo(tmp_path, name, make, pairs):
    torch.manual_seed(0)
    state = make()
    torch.save(state, tmp_path / f"{name}.pth")
    kwargs = {} if name == "googlenet" else {"hidden": HIDDEN, "num_classes": CLASSES}
    model = load_model(name, weights=tmp_path / f"{name}.pth", **kwargs)
    ours = model.state_dict()
    for theirs_key, our_key in pairs.items():
        assert torch.equal(ours[our_key], state[theirs_key]), (theirs_key, our_key)
