import pytest
import torch

from convscope.analysis.linearity import affine_map, max_affine_error
from convscope.models import create_model


def test_lenet_without_activations_is_one_affine_map():
    torch.manual_seed(0)
    model = create_model("lenet5", activation="none", pool="avg")
    A, b = affine_map(model, (1, 28, 28))
    assert A.shape == (10, 784) and b.shape == (10,)
    x = torch.rand(16, 1, 28, 28)
    assert max_affine_error(model, A, b, x) <= 1e-5
    assert next(model.parameters()).dtype == torch.float32 and model.training  # the user's model is untouched


@pytest.mark.parametrize("kwargs", [{"activation": "relu", "pool": "avg"}, {"activation": "none", "pool": "max"}])
def test_a_nonlinear_network_is_caught(kwargs):
    torch.manual_seed(0)
    model = create_model("lenet5", **kwargs)
    A, b = affine_map(model, (1, 28, 28))
    assert max_affine_error(model, A, b, torch.rand(16, 1, 28, 28)) > 1e-3


def test_hand_worked_affine_map():
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]]))
        lin.bias.copy_(torch.tensor([0.5, -2.0]))
    A, b = affine_map(torch.nn.Sequential(torch.nn.Flatten(), lin), (3,))
    torch.testing.assert_close(A, lin.weight.double())
    torch.testing.assert_close(b, lin.bias.double())
