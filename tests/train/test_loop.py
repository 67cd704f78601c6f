"""fit's gradient clipping and its process-wide flush-denormal flag."""

import pytest
import torch
import torch.nn.functional as F

from convscope.config import TrainConfig
from convscope.errors import UserError
from convscope.models import create_model
from convscope.train.loop import fit


def _one_sgd_step(tiny_data, grad_clip):
    torch.manual_seed(0)
    model = create_model("lenet5")
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    (x, y), test = tiny_data
    cfg = TrainConfig(epochs=1, batch_size=len(x), optimizer="sgd", momentum=0.0, lr=1.0, schedule="constant",
                      label_smoothing=0.0, grad_clip=grad_clip)
    fit(model, (x, y), test, cfg, progress=False)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return float((after - before).norm())


def test_grad_clip_bounds_the_step(tiny_data):
    # One plain SGD step at lr 1 over the whole batch moves the weights by exactly the gradient's norm:
    # the oracle is autograd's gradient of the mean cross-entropy at the same initial weights.
    torch.manual_seed(0)
    model = create_model("lenet5").train()
    (x, y), _ = tiny_data
    F.cross_entropy(model(x), y).backward()
    grad_norm = float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm())
    assert grad_norm > 0.02  # so that clipping at 0.01 below has something to clip
    assert _one_sgd_step(tiny_data, None) == pytest.approx(grad_norm, rel=1e-4)
    assert _one_sgd_step(tiny_data, 0.01) == pytest.approx(0.01, rel=1e-3)
    assert _one_sgd_step(tiny_data, 10 * grad_norm) == pytest.approx(grad_norm, rel=1e-4)  # under the bound: untouched


def test_grad_clip_must_be_positive(tiny_data):
    with pytest.raises(UserError, match="grad_clip"):
        fit(create_model("lenet5"), *tiny_data, TrainConfig(epochs=1, grad_clip=0.0), progress=False)


def test_subnormals_are_back_after_training(tiny_data):
    fit(create_model("lenet5"), *tiny_data, TrainConfig(epochs=1, batch_size=256), progress=False)
    tiny = torch.tensor([1e-38], dtype=torch.float32) * torch.tensor([1e-3])
    assert tiny.item() != 0.0  # flushed to zero while fit runs; IEEE subnormals again after it
