"""Guided backpropagation and the deconvnet rule: against Captum where every ReLU is an nn.ReLU module, and
against a hand-written oracle for every other way of calling a ReLU (where Captum computes the ordinary
gradient instead)."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import UserError
from convscope.explain.relu_rules import Deconvnet, GuidedBackprop
from convscope.models import create_model
from tests.explain.conftest import zoo
from tests.usermodels import user_model

METHODS = {"guided": (GuidedBackprop, ca.GuidedBackprop), "deconvnet": (Deconvnet, ca.Deconvolution)}


class OracleReLU(torch.autograd.Function):
    """The rules written out on their own: the oracle the method is checked against."""

    @staticmethod
    def forward(ctx, x, rule):
        ctx.save_for_backward(x)
        ctx.rule = rule
        return torch.where(x > 0, x, torch.zeros_like(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        positive_g = torch.where(g > 0, g, torch.zeros_like(g))
        if ctx.rule == "guided":
            return torch.where(x > 0, positive_g, torch.zeros_like(g)), None
        return positive_g, None


@pytest.mark.parametrize("rule", METHODS)
def test_equal_to_captum_when_every_relu_is_a_module(captum_case, rule):
    name, model, x = captum_case
    ours, theirs = METHODS[rule]
    t = torch.arange(len(x)) % 10
    torch.testing.assert_close(ours(model).attribute(x, t), theirs(model).attribute(x, target=t), atol=1e-5,
                               rtol=1e-5)


class Spelled(nn.Module):
    """conv → relu → conv → relu → linear, with the two ReLUs written as `how` says."""

    def __init__(self, how: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.how = how
        self.conv1, self.conv2 = nn.Conv2d(2, 4, 3), nn.Conv2d(4, 4, 3)
        self.fc = nn.Linear(4 * 4 * 4, 5)
        self.relu = nn.ReLU(inplace=how == "module-inplace")
        self.relu2 = nn.ReLU()

    def act(self, x: torch.Tensor, second: bool) -> torch.Tensor:
        how = self.how
        if how in ("module", "module-inplace", "module-reused"):
            return self.relu2(x) if second and how == "module" else self.relu(x)
        if how == "F.relu":
            return F.relu(x)
        if how == "F.relu-inplace":
            return F.relu(x, inplace=True)
        if how == "torch.relu":
            return torch.relu(x)
        if how == "torch.relu_":
            return torch.relu_(x)
        if how == "Tensor.relu":
            return x.relu()
        if how == "Tensor.relu_":
            x.relu_()
            return x
        if how == "oracle":
            return OracleReLU.apply(x, self.rule)
        raise KeyError(how)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x), second=False)
        x = self.act(self.conv2(x), second=True)
        return self.fc(x.flatten(1))


SPELLINGS = ["module", "module-inplace", "module-reused", "F.relu", "F.relu-inplace", "torch.relu", "torch.relu_",
             "Tensor.relu", "Tensor.relu_"]


@pytest.mark.parametrize("how", SPELLINGS)
@pytest.mark.parametrize("rule", METHODS)
def test_every_way_of_calling_a_relu_gets_the_rule(how, rule):
    x = torch.randn(3, 2, 8, 8)
    model, oracle = Spelled(how).eval(), Spelled("oracle").eval()
    oracle.rule = rule
    xr = x.clone().requires_grad_(True)
    oracle(xr)[:, 2].sum().backward()
    torch.testing.assert_close(METHODS[rule][0](model).attribute(x, 2), xr.grad)
    # and the rule matters here: the ordinary gradient differs
    xg = x.clone().requires_grad_(True)
    Spelled("module")(xg)[:, 2].sum().backward()
    assert not torch.allclose(xg.grad, xr.grad)


def _user_oracle(model: nn.Module, x: torch.Tensor, rule: str) -> torch.Tensor:
    """tests.usermodels.UserNet's forward written out with the oracle ReLU at each of its four ReLU calls."""
    relu = lambda t: OracleReLU.apply(t, rule)  # noqa: E731
    b = model.block
    h = relu(model.stem[1](model.stem[0](x)))
    out = relu(b.bn1(b.conv1(h)))
    h = relu(b.bn2(b.conv2(out)) + h)
    h = relu(model.conv(h))
    return model.fc(model.pool(model.dropout(h)).flatten(1))


@pytest.mark.parametrize("rule", METHODS)
def test_a_users_model_with_functional_relus_matches_the_oracle_where_captum_does_not(rule):
    model = user_model(functional=True).eval()
    x = torch.rand(2, 3, 32, 32)
    t = torch.tensor([3, 6])
    xr = x.clone().requires_grad_(True)
    _user_oracle(model, xr, rule)[torch.arange(2), t].sum().backward()
    ours = METHODS[rule][0](model).attribute(x, t)
    torch.testing.assert_close(ours, xr.grad, atol=1e-6, rtol=1e-5)
    # Captum applies its rule to nn.ReLU modules only: at F.relu and torch.relu it takes the ordinary
    # gradient (and warns), so its map is not the method's.
    with pytest.warns(UserWarning):
        theirs = METHODS[rule][1](model).attribute(x, target=t)
    assert not torch.allclose(theirs, xr.grad, atol=1e-5)


def test_a_unit_target_projects_from_inside_the_network():
    model, x = zoo("lenet5")
    model.eval()
    a = Deconvnet(model).attribute(x, ("features.conv2", 3))
    b = Deconvnet(model).attribute(x, ("features.conv2", 3, 2, 4))
    assert a.shape == b.shape == x.shape
    # Neuron (2, 4) of conv2 (5×5 over pool1) sees pool1 rows 2..6, cols 4..8, i.e. conv1 rows 4..13,
    # cols 8..17, i.e. (conv1 5×5, padding 2) input rows 2..15, cols 6..19: nothing outside moves it.
    rows, cols = b[0, 0].nonzero().unbind(1)
    assert len(rows) and rows.min() >= 2 and rows.max() <= 15 and cols.min() >= 6 and cols.max() <= 19
    assert a[0, 0].abs().sum() > b[0, 0].abs().sum() and a[0, 0, :2].abs().sum() > 0  # the whole map sees more


@pytest.mark.parametrize("method", [GuidedBackprop, Deconvnet])
def test_activations_without_a_rule_are_refused_by_name(method):
    with pytest.raises(UserError, match="relu1"):  # classic LeNet-5 uses scaled tanh
        method(create_model("lenet5", activation="tanh")).attribute(torch.rand(1, 1, 28, 28), 0)
    with pytest.raises(UserError, match="relu1"):  # |x| rectification
        method(create_model("allconv-c", activation="avr", width=0.125, in_channels=1)).attribute(
            torch.rand(1, 1, 28, 28), 0)

    class FunctionalGelu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 2, 3))
            self.head = nn.Linear(2 * 26 * 26, 3)

        def forward(self, x):
            return self.head(F.gelu(self.body(x)).flatten(1))

    with pytest.raises(UserError, match="gelu"):
        method(FunctionalGelu()).attribute(torch.rand(1, 1, 28, 28), 0)

    class Inner(nn.Module):
        def forward(self, x):
            return F.gelu(x)

    nested = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.Identity(), Inner()), nn.Flatten(), nn.Linear(1352, 3))
    with pytest.raises(UserError, match=r"gelu in module '1\.1'"):  # the innermost module that called it
        method(nested).attribute(torch.rand(1, 1, 28, 28), 0)


def test_the_rule_ends_with_the_call():
    model = Spelled("F.relu").eval()
    x = torch.randn(2, 2, 8, 8)
    GuidedBackprop(model).attribute(x, 1)
    xr = x.clone().requires_grad_(True)
    model(xr)[:, 1].sum().backward()  # an ordinary gradient again
    xo = x.clone().requires_grad_(True)
    Spelled("module").eval()(xo)[:, 1].sum().backward()
    torch.testing.assert_close(xr.grad, xo.grad)
