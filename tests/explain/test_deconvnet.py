"""The deconvnet projection (Zeiler and Fergus's walk with switches) against the deconvnet-rule gradient, a case
worked by hand, and the models it must refuse by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import LayerReuseError, UserError
from convscope.explain import create_method
from convscope.explain.deconvnet import DeconvnetProjection, _unpool
from convscope.hooks import frozen, record, relu_rule
from convscope.models import create_model
from tests.explain.conftest import zoo
from tests.untouched import assert_untouched, snapshot
from tests.usermodels import user_model


def tiny() -> tuple[nn.Module, torch.Tensor]:
    """Every layer the walk inverts, in one chain: strided, dilated, grouped and padded convs (so the transposed
    conv needs output padding), BatchNorm away from (0, 1), in-place ReLU, overlapping max pooling, average
    pooling, dropout, flatten, fully connected layers."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),  # (B, 8, 12, 12)
        nn.MaxPool2d(3, stride=2, ceil_mode=True),  # (B, 8, 6, 6), windows overlap
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2), nn.ReLU(),
        nn.AvgPool2d(2), nn.Conv2d(8, 6, 2, stride=2, padding="valid"), nn.ReLU(),  # (B, 6, 1, 1)
        nn.AdaptiveAvgPool2d(2), nn.Dropout(0.3), nn.Flatten(), nn.Linear(24, 10), nn.ReLU(), nn.Linear(10, 4))
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.uniform_(-0.3, 0.3), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 1.5)
    return model, torch.randn(3, 3, 24, 24)


CASES = {  # model -> layers projected (conv outputs before their ReLU, ReLUs, pools, fully connected)
    "lenet5": ["features.conv1", "features.pool1", "features.conv2", "features.relu2", "classifier.fc1"],
    "alexnet": ["features.conv1", "features.pool1", "features.conv4", "features.pool5", "classifier.relu6"],
    "tiny": ["1", "3", "4", "6", "8", "12"],
}


def _model(name: str) -> tuple[nn.Module, torch.Tensor]:
    return tiny() if name == "tiny" else zoo(name)


def _units(model: nn.Module, x: torch.Tensor, layer: str) -> list[tuple]:
    """A whole map and a neuron inside it (a fully connected layer: two units)."""
    with torch.no_grad(), record(model.eval(), [layer]) as acts:
        model(x)
    shape = acts[layer].shape
    if len(shape) == 2:
        return [(layer, 1), (layer, shape[1] - 1)]
    return [(layer, 1), (layer, shape[1] - 1, shape[2] // 2, shape[3] - 1)]


@pytest.mark.parametrize("name", CASES)
def test_starting_from_one_it_is_the_deconvnet_rule_gradient(name):
    model, x = _model(name)
    ours, rule = DeconvnetProjection(model, start="one"), create_method("deconvnet", model)
    for layer in CASES[name]:
        for unit in _units(model, x, layer):
            expected = rule.attribute(x, unit)
            assert expected.abs().sum() > 0, unit  # a projection that says something
            torch.testing.assert_close(ours.attribute(x, unit), expected, atol=1e-5, rtol=1e-5)
    # a class, from the logits: a class always starts from 1
    for start in ("one", "activation"):
        torch.testing.assert_close(DeconvnetProjection(model, start=start).attribute(x, [0, 3, 2][: len(x)]),
                                   rule.attribute(x, [0, 3, 2][: len(x)]), atol=1e-5, rtol=1e-5)


def _weighted_rule_gradient(model: nn.Module, x: torch.Tensor, unit: tuple) -> torch.Tensor:
    """The oracle of the paper's start: the deconvnet-rule gradient of Σ a·stopgrad(a) over the kept units."""
    layer, channel, *pos = unit
    with frozen(model), relu_rule(model, "deconvnet"), record(model, [layer], detach=False) as acts:
        xr = x.clone().requires_grad_(True)
        model(xr)
        a = acts[layer]
        keep = torch.zeros_like(a)
        keep[(slice(None), channel, *pos)] = 1
        (grad,) = torch.autograd.grad((a * (a * keep).detach()).sum(), xr)
    return grad


@pytest.mark.parametrize("name", CASES)
def test_the_papers_start_is_the_rule_gradient_of_the_activation_weighted_unit(name):
    model, x = _model(name)
    ours = DeconvnetProjection(model)  # start="activation", the paper's
    for layer in CASES[name]:
        for unit in _units(model, x, layer):
            torch.testing.assert_close(ours.attribute(x, unit), _weighted_rule_gradient(model, x, unit),
                                       atol=1e-5, rtol=1e-5)


def test_a_rectified_neuron_is_its_activation_times_the_rule_gradient_and_a_negative_one_is_not():
    model, x = zoo("lenet5")
    model.eval()
    rule = create_method("deconvnet", model)
    with torch.no_grad(), record(model, ["features.relu2", "features.conv2"]) as acts:
        model(x)
    # relu2 ≥ 0: the rule is positively homogeneous, so starting from a is a times starting from 1
    a = acts["features.relu2"][:, 4, 3, 5].view(-1, 1, 1, 1)
    assert (a > 0).any()
    torch.testing.assert_close(DeconvnetProjection(model).attribute(x, ("features.relu2", 4, 3, 5)),
                               a * rule.attribute(x, ("features.relu2", 4, 3, 5)), atol=1e-6, rtol=1e-5)
    # a conv output before its ReLU may be negative: going down, ReLU1 rectifies −a·z, not z, so the paper's
    # projection of that neuron is not a times the rule gradient (name the ReLU to project the rectified map)
    conv = acts["features.conv2"]
    b, c, y, x_ = (conv < -0.05).nonzero()[0].tolist()
    unit = ("features.conv2", c, y, x_)
    ours = DeconvnetProjection(model).attribute(x, unit)[b]
    scaled = conv[b, c, y, x_] * rule.attribute(x, unit)[b]
    assert not torch.allclose(ours, scaled, atol=1e-6)
    torch.testing.assert_close(ours, _weighted_rule_gradient(model, x, unit)[b], atol=1e-6, rtol=1e-5)


def test_a_case_worked_by_hand():
    # x (4×4) -> conv 2×2, kernel [[1, 0], [0, -1]], no bias -> y[i, j] = x[i, j] − x[i+1, j+1] (3×3)
    #   y = [[4, -1, 2], [-3, 1, -2], [0.5, 3, -1]] -> ReLU r = [[4, 0, 2], [0, 1, 0], [0.5, 3, 0]]
    # -> max pool 2×2, stride 1 (overlapping): p = [[4, 2], [3, 3]], switches r(0,0), r(0,2), r(2,1), r(2,1).
    # Down, from the whole map p: unpool adds the two 3s at r(2,1): u = 4 at (0,0), 2 at (0,2), 6 at (2,1);
    # rectify (all ≥ 0); transposed filter: each u at (i, j) puts +u at x(i, j) and −u at x(i+1, j+1).
    x = torch.tensor([[4.0, -3.0, 2.0, 0.0],
                      [0.0, 0.0, -2.0, 0.0],
                      [0.5, 3.0, -1.0, 0.0],
                      [0.0, 0.0, 0.0, 0.0]]).view(1, 1, 4, 4)
    conv = nn.Conv2d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]).view(1, 1, 2, 2))
    model = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2, stride=1))
    whole = torch.tensor([[4.0, 0.0, 2.0, 0.0],
                          [0.0, -4.0, 0.0, -2.0],
                          [0.0, 6.0, 0.0, 0.0],
                          [0.0, 0.0, -6.0, 0.0]])
    ones = torch.tensor([[1.0, 0.0, 1.0, 0.0],  # start="one": u = 1, 1, 2
                         [0.0, -1.0, 0.0, -1.0],
                         [0.0, 2.0, 0.0, 0.0],
                         [0.0, 0.0, -2.0, 0.0]])
    neuron = torch.zeros(4, 4)  # p(1, 1) = 3 alone: +3 at x(2, 1), −3 at x(3, 2)
    neuron[2, 1], neuron[3, 2] = 3.0, -3.0
    torch.testing.assert_close(DeconvnetProjection(model).attribute(x, ("2", 0))[0, 0], whole)
    torch.testing.assert_close(DeconvnetProjection(model, start="one").attribute(x, ("2", 0))[0, 0], ones)
    torch.testing.assert_close(DeconvnetProjection(model).attribute(x, ("2", 0, 1, 1))[0, 0], neuron)


def test_unpooling_adds_where_overlapping_windows_share_a_switch():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 9)
    for kernel, stride, overlap in ((2, 2, False), (3, 2, True)):
        pooled, switches = F.max_pool2d(x, kernel, stride, return_indices=True)
        signal = torch.rand_like(pooled)
        ours = _unpool(signal, switches, x.shape)
        written = F.max_unpool2d(signal, switches, kernel, stride, output_size=x.shape[-2:])
        assert torch.allclose(ours, written) != overlap  # max_unpool2d keeps one of two values at a shared switch
        torch.testing.assert_close(ours.sum(), signal.sum())  # nothing is lost


def test_dtype_and_device_come_from_the_model():
    model, x = tiny()
    model = model.double()
    out = DeconvnetProjection(model).attribute(x.float(), ("4", 2))
    assert out.dtype == torch.float64 and out.shape == x.shape
    torch.testing.assert_close(out, _weighted_rule_gradient(model, x.double(), ("4", 2)))


class Functional(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv1, self.conv2 = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.how == "F.relu":
            x = F.relu(x)
        elif self.how == "relu_":
            x.relu_()  # in place, so the next module gets the same tensor object, changed
        else:
            x = self.relu(x)
        return self.conv2(self.relu(x) if self.how == "reused" else x)


def test_models_that_are_not_chains_are_refused_by_module_name():
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(UserError, match=r"'block\.relu'.*create_method\('deconvnet', model\)"):
        DeconvnetProjection(user_model(functional=False)).attribute(x, ("conv", 0))
    with pytest.raises(UserError, match="'fc'"):  # F.relu and .flatten(1) in forward
        DeconvnetProjection(user_model(functional=True)).attribute(x, 3)
    for how in ("F.relu", "relu_"):
        with pytest.raises(UserError, match="'conv2'.*not a chain"):
            DeconvnetProjection(Functional(how)).attribute(torch.rand(1, 1, 8, 8), ("conv2", 0))
    # below the residual block the user's model is a chain: conv, BatchNorm, in-place ReLU
    model = user_model().eval()
    torch.testing.assert_close(DeconvnetProjection(model, start="one").attribute(x, ("stem.2", 3)),
                               create_method("deconvnet", model).attribute(x, ("stem.2", 3)), atol=1e-6, rtol=1e-5)


def test_a_module_called_twice_is_walked_but_cannot_be_the_target():
    model = Functional("reused").eval()  # conv1 -> relu -> relu -> conv2: still a chain
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(DeconvnetProjection(model, start="one").attribute(x, ("conv2", 1)),
                               create_method("deconvnet", model).attribute(x, ("conv2", 1)))
    with pytest.raises(LayerReuseError, match="'relu'"):
        DeconvnetProjection(model).attribute(x, ("relu", 0))


def test_layers_without_an_inverse_are_refused_by_name():
    gelu = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.Conv2d(2, 2, 3))
    with pytest.raises(UserError, match=r"module '1' \(GELU\)"):
        DeconvnetProjection(gelu).attribute(torch.rand(1, 1, 8, 8), ("2", 0))
    DeconvnetProjection(gelu).attribute(torch.rand(1, 1, 8, 8), ("0", 0))  # below the GELU is fine
    lrn = create_model("alexnet", groups=2, num_classes=10, hidden=32)
    with pytest.raises(UserError, match=r"'features\.norm2' \(LocalResponseNorm\)"):
        DeconvnetProjection(lrn).attribute(torch.rand(1, 3, 64, 64), ("features.conv3", 0))
    with pytest.raises(UserError, match=r"'classifier\.relu4' \(Tanh\)"):  # the first met going down
        DeconvnetProjection(create_model("lenet5", activation="tanh")).attribute(torch.rand(1, 1, 28, 28), 0)


def test_wrong_targets_and_options_are_refused():
    model, x = zoo("lenet5")
    with pytest.raises(UserError, match="Unknown start"):
        DeconvnetProjection(model, start="ones")
    with pytest.raises(UserError, match="conv9"):
        DeconvnetProjection(model).attribute(x, ("features.conv9", 0))
    with pytest.raises(UserError, match="Channel 6"):
        DeconvnetProjection(model).attribute(x, ("features.conv1", 6))
    with pytest.raises(UserError, match="out of range"):
        DeconvnetProjection(model).attribute(x, 10)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_a_refusal_leaves_the_model_as_found(train):
    model, x = user_model(functional=False).train(train), torch.rand(2, 3, 32, 32)
    before = snapshot(model)
    with pytest.raises(UserError):
        DeconvnetProjection(model).attribute(x, ("conv", 0))
    assert_untouched(model, before)
