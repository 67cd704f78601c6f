"""fit and evaluate: the recipe keywords, gradient clipping, the flush-denormal flag, and each module's mode."""

import copy

import pytest
import torch
import torch.nn.functional as F

from convscope.config import TrainConfig
from convscope.errors import UserError
from convscope.models import create_model
from convscope.train.loop import RECIPE_FIELDS, evaluate, fit
from tests.usermodels import USER_INPUT, user_model

ONE_SGD_STEP = {"epochs": 1, "optimizer": "sgd", "momentum": 0.0, "lr": 1.0, "schedule": "constant",
                "label_smoothing": 0.0}


def _one_sgd_step(tiny_data, grad_clip):
    torch.manual_seed(0)
    model = create_model("lenet5")
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    (x, y), test = tiny_data
    cfg = TrainConfig(batch_size=len(x), grad_clip=grad_clip, **ONE_SGD_STEP)
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


def test_recipe_keywords_train_without_a_config(tiny_data):
    """fit(..., epochs=1, lr=1.0, ...) is one full-batch SGD step: w − ∇L(w), with the gradient from autograd."""
    (x, y), test = tiny_data
    torch.manual_seed(0)
    model = create_model("lenet5")
    oracle = copy.deepcopy(model)
    F.cross_entropy(oracle(x), y).backward()
    expected = [p.detach() - p.grad for p in oracle.parameters()]
    result = fit(model, (x, y), test, batch_size=len(x), progress=False, **ONE_SGD_STEP)
    assert len(result.history) == 1
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), e, atol=1e-5, rtol=1e-4)


def test_recipe_keywords_replace_the_configs_fields(tiny_data):
    result = fit(create_model("lenet5"), *tiny_data, TrainConfig(epochs=3, batch_size=256), epochs=1,
                 progress=False)
    assert [r["epoch"] for r in result.history] == [1]


@pytest.mark.parametrize("kwargs, words", [
    ({"device": "cpu"}, ("'device'", "epochs", "eval_batch_size")),  # a run's field, not the recipe's
    ({"data": "cifar10", "train_subset": 100}, ("'data'", "'train_subset'", "lr")),
    ({"epoch": 2}, ("'epoch'", "epochs")),
    ({"epochs": "many"}, ("epochs", "number")),
    ({"optimizer": "lbfgs"}, ("optimizer", "adam")),
    ({"schedule": "linear"}, ("schedule", "onecycle")),
    ({"batch_size": 0}, ("batch_size", "at least 1")),
])
def test_a_wrong_recipe_keyword_is_a_user_error(tiny_data, kwargs, words):
    with pytest.raises(UserError) as info:
        fit(create_model("lenet5"), *tiny_data, progress=False, **kwargs)
    for w in words:
        assert w in str(info.value)


def test_the_recipe_fields_are_config_fields():
    assert set(RECIPE_FIELDS) <= set(TrainConfig.__dataclass_fields__)


def _mixed(model):
    """Train mode, with every BatchNorm frozen in eval mode (as a user fine-tuning with frozen statistics)."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    return model


def _modes(model):
    return [m.training for m in model.modules()]


@pytest.mark.parametrize("setup", [_mixed, lambda m: m.train(), lambda m: m.eval()])
def test_evaluate_runs_in_eval_mode_and_restores_each_modules_mode(setup):
    model = setup(user_model())
    modes = _modes(model)
    x, y = torch.rand(12, *USER_INPUT), torch.arange(12) % 10
    out = evaluate(model, x, y, batch_size=5)
    assert _modes(model) == modes
    with torch.no_grad():  # the oracle: an eval-mode copy, all at once
        logits = copy.deepcopy(model).eval()(x)
    assert out["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert out["acc"] == pytest.approx(float((logits.argmax(1) == y).double().mean()))


@pytest.mark.parametrize("setup", [_mixed, lambda m: m.train(), lambda m: m.eval()])
def test_fit_leaves_each_module_in_the_mode_it_came_in(setup):
    model = setup(user_model())
    modes = _modes(model)
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(40, *USER_INPUT, generator=g), torch.arange(40) % 10)
    fit(model, data, data, epochs=1, batch_size=20, progress=False)
    assert _modes(model) == modes
