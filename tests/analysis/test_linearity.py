import pytest
import torch
from torch import nn

from convscope.analysis.linearity import affine_map, max_affine_error
from convscope.errors import UserError
from convscope.models import create_model
from tests.untouched import assert_untouched, snapshot
from tests.usermodels import USER_INPUT, user_model


def test_lenet_without_activations_is_one_affine_map():
    torch.manual_seed(0)
    model = create_model("lenet5", activation="none", pool="avg")
    x = torch.rand(16, 1, 28, 28)
    before = snapshot(model)
    A, b = affine_map(model, (1, 28, 28))
    assert A.shape == (10, 784) and b.shape == (10,)
    assert max_affine_error(model, A, b, x) <= 1e-5
    assert_untouched(model, before)  # computed on a float64 copy: the user's float32 model is untouched


@pytest.mark.parametrize("kwargs", [{"activation": "relu", "pool": "avg"}, {"activation": "none", "pool": "max"}])
def test_a_nonlinear_network_is_refused(kwargs):
    torch.manual_seed(0)
    model = create_model("lenet5", **kwargs)
    rng = torch.get_rng_state()
    with pytest.raises(UserError, match="is not affine.*check=False"):
        affine_map(model, (1, 28, 28))
    assert torch.equal(torch.get_rng_state(), rng)  # the check draws from a generator of its own
    # What the check protects against: the map is wrong by more than the logits themselves.
    A, b = affine_map(model, (1, 28, 28), check=False)
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        scale = float(model.eval()(x).abs().max())
    assert max_affine_error(model, A, b, x) > 0.1 * scale


def test_a_user_network_with_batchnorm_and_residual_relus_is_refused():
    with pytest.raises(UserError, match="UserNet is not affine"):
        affine_map(user_model(), USER_INPUT)


def test_hand_worked_affine_map():
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]]))
        lin.bias.copy_(torch.tensor([0.5, -2.0]))
    A, b = affine_map(nn.Sequential(nn.Flatten(), lin), (3,))
    torch.testing.assert_close(A, lin.weight.double())
    torch.testing.assert_close(b, lin.bias.double())


def test_batchnorm_in_a_train_mode_model_is_its_affine_eval_map():
    """Linear then BatchNorm1d with running mean 1, variance 4 (eps 0), scale 3, shift −1: by hand,
    y = 3·(Wx + c − 1)/2 − 1, i.e. A = 1.5·W, b = 1.5·(c − 1) − 1."""
    lin, bn = nn.Linear(2, 2), nn.BatchNorm1d(2, eps=0.0)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0], [4.0, 0.0]]))
        lin.bias.copy_(torch.tensor([1.0, 3.0]))
        bn.running_mean.fill_(1.0), bn.running_var.fill_(4.0), bn.weight.fill_(3.0), bn.bias.fill_(-1.0)
    model = nn.Sequential(lin, bn).train()
    A, b = affine_map(model, (2,))
    torch.testing.assert_close(A, torch.tensor([[1.5, -3.0], [6.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(b, torch.tensor([-1.0, 2.0], dtype=torch.float64))
    assert model.training and bn.running_mean.tolist() == [1.0, 1.0]
