"""Incremental occlusion against full re-inference (`fast=False`) and against Captum 0.9.

Float32 checks run on LeNet-5. On AlexNet and VGG-16 with random weights an occluding window moves the logit by
about 1e-3 of the activations' size, so float32 rounding alone puts full re-inference 6e-5 (relative) away from
itself in float64: those models are checked in float64, where the two ways agree to rounding (1e-12).
"""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
from torch import nn

from convscope.errors import UserError
from convscope.explain.incremental import NotIncremental, Plan, least_macs, trace_chain
from convscope.explain.occlusion import Occlusion, window_starts
from convscope.hooks import frozen
from convscope.models import create_model
from tests.explain.conftest import zoo
from tests.usermodels import user_model


def _plan(model: nn.Module, x: torch.Tensor, target, always: bool = False, **setup) -> Plan | None:
    """The plan `Occlusion(model, **setup)` uses for (x, target); with `always`, as if the engine always paid."""
    occ = Occlusion(model, **setup)
    if always:
        occ.pays = lambda plan: True
    H, W = x.shape[2:]
    starts = torch.tensor([(y, xx) for y in window_starts(H, occ.window[0], occ.stride[0])
                           for xx in window_starts(W, occ.window[1], occ.stride[1])])
    with torch.no_grad(), frozen(model):
        return occ.plan(occ.prepare(x), target, starts)


def _taken(model: nn.Module, x: torch.Tensor, target, **setup) -> bool:
    """Whether the model allows `Occlusion(model, **setup)` an incremental path for (x, target), whether or not
    it pays here (the test models are small)."""
    return _plan(model, x, target, always=True, **setup) is not None


def test_the_default_takes_the_engine_only_where_it_pays():
    model, x = zoo("lenet5")
    model.eval()
    one = x[:1]
    assert _plan(model, one, 2, window=4, stride=1) is None  # one 28×28 image: 0.4 M multiply-adds a pass
    assert _plan(model, one.repeat(8, 1, 1, 1), 2, window=4, stride=1) is not None
    assert _plan(model, one, 2, window=4, stride=1, fast=True) is not None  # asked for, it is used
    assert _plan(model, one.repeat(8, 1, 1, 1), 2, window=28, stride=1) is None  # nothing to save


def _close(fast: torch.Tensor, full: torch.Tensor, rel: float) -> None:
    scale = float(full.abs().max())
    assert scale > 0
    assert float((fast - full).abs().max()) <= rel * scale


@pytest.mark.parametrize(("window", "stride"), [(4, 1), (5, 3), (6, 5), (3, 2), (28, 1)])
def test_lenet5_equals_full_reinference(window, stride):
    model, x = zoo("lenet5")
    model.eval()
    t = torch.tensor([2, 0, 9])
    assert _taken(model, x, t, window=window, stride=stride) == (window < 28)
    fast = Occlusion(model, window=window, stride=stride, fast=True).attribute(x, t)
    full = Occlusion(model, window=window, stride=stride, fast=False).attribute(x, t)
    _close(fast, full, 1e-4)


def test_lenet5_equals_captum():
    model, x = zoo("lenet5")
    model.eval()
    ours = Occlusion(model, window=5, stride=3, fast=True, perturbations_per_eval=7).attribute(x, 4)
    theirs = ca.Occlusion(model).attribute(x, target=4, sliding_window_shapes=(1, 5, 5), strides=(1, 3, 3),
                                          perturbations_per_eval=7)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("name", "window", "stride"), [("alexnet", 16, 9), ("vgg16", 6, 5)])
def test_alexnet_and_vgg16_equal_full_reinference(name, window, stride):
    model, x = zoo(name)
    model = model.double().eval()
    x = x[:1].double()
    assert _taken(model, x, 1, window=window, stride=stride)
    fast = Occlusion(model, window=window, stride=stride, fast=True, perturbations_per_eval=9).attribute(x, 1)
    full = Occlusion(model, window=window, stride=stride, fast=False).attribute(x, 1)
    _close(fast, full, 1e-9)


@pytest.mark.parametrize("target", [("features.conv2", 5), ("features.conv2", 5, 3, 4), ("features", 7),
                                    ("features.relu1", 2)])
def test_unit_targets(target):
    model, x = zoo("lenet5")
    model = model.double().eval()
    x = x.double()
    assert _taken(model, x, target, window=4, stride=2)
    fast = Occlusion(model, window=4, stride=2, fast=True).attribute(x, target)
    full = Occlusion(model, window=4, stride=2, fast=False).attribute(x, target)
    _close(fast, full, 1e-9)


def test_baseline_image_probability_output_and_per_example_targets():
    model, x = zoo("lenet5")
    model.eval()
    base = torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(1))
    t = [1, 7, 3]
    for setup in ({"baseline": base}, {"baseline": 0.5, "output": "probability"}, {"baseline": torch.rand(x.shape)}):
        fast = Occlusion(model, window=7, stride=4, fast=True, **setup).attribute(x, t)
        full = Occlusion(model, window=7, stride=4, fast=False, **setup).attribute(x, t)
        _close(fast, full, 1e-4)


def test_a_model_in_training_mode_is_explained_in_eval_mode_and_left_in_training_mode():
    model, x = zoo("vgg16")
    model = model.double().train()
    x = x.double()
    fast = Occlusion(model, window=6, stride=4, fast=True).attribute(x, 2)
    assert all(m.training for m in model.modules())
    full = Occlusion(model.eval(), window=6, stride=4, fast=False).attribute(x, 2)
    _close(fast, full, 1e-9)


class _Odd(nn.Module):
    """A layer the engine does not know."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def _layers(odd: bool = False) -> nn.Sequential:
    """Every layer kind the engine follows: BatchNorm, in-place ReLU, dilation, groups, "same" padding, ceil-mode
    max pooling with padding, average pooling with counted padding, LRN, dropout, size-keeping adaptive pooling."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=2, dilation=2), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),  # 23 -> 12
        nn.Conv2d(8, 8, 3, padding="same", groups=2), nn.LeakyReLU(0.1), nn.LocalResponseNorm(3),
        *([_Odd()] if odd else []),
        nn.AvgPool2d(3, stride=2, padding=1), nn.Dropout(0.5), nn.Conv2d(8, 6, 2, stride=1), nn.Tanh(),
        nn.AdaptiveAvgPool2d(5), nn.Conv2d(6, 4, 2), nn.Flatten(), nn.Linear(64, 5),
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 1.5)
    return model.double()


def test_every_layer_kind_equals_full_reinference():
    model = _layers().eval()
    x = torch.rand(2, 3, 23, 23, dtype=torch.float64)
    for window, stride in ((3, 2), (5, 4), (4, 3)):
        assert _taken(model, x, 3, window=window, stride=stride)
        fast = Occlusion(model, window=window, stride=stride, fast=True).attribute(x, 3)
        full = Occlusion(model, window=window, stride=stride, fast=False).attribute(x, 3)
        _close(fast, full, 1e-9)


def test_an_unknown_layer_ends_the_patches_and_fast_true_names_it():
    model = _layers(odd=True).eval()
    x = torch.rand(1, 3, 23, 23, dtype=torch.float64)
    assert _taken(model, x, 0, window=3, stride=2)  # the layers before it still run on patches
    fast = Occlusion(model, window=3, stride=2).attribute(x, 0)
    _close(fast, Occlusion(model, window=3, stride=2, fast=False).attribute(x, 0), 1e-9)
    with pytest.raises(UserError, match="'7': _Odd"):
        Occlusion(model, window=3, stride=2, fast=True).attribute(x, 0)


@pytest.mark.parametrize("functional", [True, False])
def test_a_residual_model_falls_back_to_full_reinference(functional):
    model = user_model(functional=functional).double().eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    assert not _taken(model, x, 1, window=8, stride=4)
    with pytest.raises(UserError, match="'block.relu'"):
        Occlusion(model, window=8, stride=4, fast=True).attribute(x, 1)
    ours = Occlusion(model, window=8, stride=4).attribute(x, 1)
    theirs = ca.Occlusion(model).attribute(x, target=1, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4))
    _close(ours, theirs.double(), 1e-6)  # Captum sums in float32
    # a unit before the residual add is reached by the chain, so it runs incrementally
    assert _taken(model, x, ("stem.2", 3), window=8, stride=4)
    fast = Occlusion(model, window=8, stride=4, fast=True).attribute(x, ("stem.2", 3))
    _close(fast, Occlusion(model, window=8, stride=4, fast=False).attribute(x, ("stem.2", 3)), 1e-9)


def test_the_chain_trace_refuses_what_it_cannot_follow():
    model = user_model().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad(), pytest.raises(NotIncremental, match="does not take the output of 'block.bn2'"):
        trace_chain(model, x)
    with torch.no_grad(), pytest.raises(NotIncremental, match="'block.relu'"):
        trace_chain(model, x, "fc")  # a unit after the break
    lenet, x = zoo("lenet5")
    with torch.no_grad():
        plan = Plan(trace_chain(lenet.eval(), x), torch.tensor([[0, 0], [24, 24]]), (4, 4))
        counts = plan.macs(2)
    assert counts["features.conv1"][1] < counts["features.conv1"][0]
    assert counts["classifier.fc1"][1] == counts["classifier.fc1"][0]
    with pytest.raises(UserError, match="fast must be"):
        Occlusion(lenet, fast="yes")  # type: ignore[arg-type]


def test_least_macs_on_a_hand_worked_chain():
    """conv 3×3 pad 1 (2→3 channels) on 8×8, ReLU, 2×2 max pool, flatten, linear 48→5, ReLU, linear 5→2, with
    a 2×2 window at (0, 0) and at (3, 3). By hand: the conv's changed output is rows/cols 0..2 (9 of 64 pixels)
    and 2..5 (16 of 64); the pool's is 0..1 and 1..2 (4 of 16 each); the first linear needs the columns of
    the changed inputs only, the second runs whole."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(48, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    x = torch.rand(1, 2, 8, 8)
    with torch.no_grad():
        chain = trace_chain(model, x)
    counts = least_macs(chain, torch.tensor([[0, 0], [3, 3]]), (2, 2))
    conv_full = 64 * 3 * 2 * 9  # per position
    assert counts == {"0": (2 * conv_full, conv_full * (9 + 16) // 64), "4": (2 * 240, 240 * 2 * 4 // 16),
                      "6": (2 * 10, 2 * 10)}


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_least_macs_bounds_the_plan(chunk):
    """No batch plan can do less than the least an exact method must: per layer and in total."""
    torch.manual_seed(0)
    model, x = create_model("alexnet", num_classes=10, hidden=64).eval(), torch.rand(1, 3, 224, 224)
    starts = torch.tensor([(y, xx) for y in window_starts(224, 16, 24) for xx in window_starts(224, 16, 24)])
    with torch.no_grad(), frozen(model):
        chain = trace_chain(model, x)
        plan, least = Plan(chain, starts, (16, 16)).macs(chunk), least_macs(chain, starts, (16, 16))
    assert plan.keys() == least.keys()
    for name, (full, done) in plan.items():
        assert least[name][0] == full and least[name][1] <= done, name
    assert least["classifier.fc6"][1] < least["classifier.fc6"][0]  # the first linear sees a partial change
