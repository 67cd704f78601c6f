"""analysis.hooks: recorded outputs are the layer's own, and no hook outlives its block."""

import pytest
import torch
from torch import nn

from convscope.errors import UserError
from convscope.hooks import REDIRECT, activations, record, relu_rule


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


@pytest.mark.parametrize("detach", [True, False])
def test_an_inplace_relu_after_the_layer_does_not_change_the_record(detach):
    net = _net()
    x = torch.randn(2, 1, 6, 6)
    expected = net[0](x).detach()
    with record(net, ["0"], detach=detach) as acts:
        net(x)
    assert (expected < 0).any()  # there are negatives the in-place ReLU would have zeroed
    torch.testing.assert_close(acts["0"].detach(), expected)
    torch.testing.assert_close(activations(net, x, ["0"])["0"], expected)


def test_gradients_flow_through_a_record_without_detach():
    net = _net()
    x = torch.randn(2, 1, 6, 6, requires_grad=True)
    with record(net, ["0"], detach=False) as acts:
        net(x)
    acts["0"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_no_hook_survives_and_reuse_raises():
    relu = nn.ReLU()
    net = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
    with pytest.raises(RuntimeError, match="more than once"), record(net, ["1"]):
        net(torch.randn(1, 3))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_the_redirect_rule_by_hand():
    """Example 0: every input negative, so the ordinary gradient is zero and the redirected one passes g where
    g < 0 (pushing the input up). Example 1: one positive input, so the ordinary gradient stands."""
    x = torch.tensor([[-1.0, -2.0, -0.5], [1.0, -3.0, -1.0]], requires_grad=True)
    g = torch.tensor([[-1.0, 2.0, -3.0], [5.0, -4.0, 6.0]])
    model = nn.Sequential(nn.ReLU(), nn.GELU())  # another nonlinearity is not refused: it keeps its gradient
    with relu_rule(model, REDIRECT):
        y = model[0](x)
    assert torch.equal(y, x.detach().clamp(min=0))
    y.backward(g)
    assert x.grad.tolist() == [[-1.0, 0.0, -3.0], [5.0, 0.0, 0.0]]
    with relu_rule(model, REDIRECT):
        model(torch.ones(2, 3))
    assert not model[0]._forward_hooks and not model._forward_pre_hooks
    with pytest.raises(UserError, match="other activations"):
        with relu_rule(model, "guided"):
            pass
