"""Every explanation method and metric leaves the model exactly as it found it (docs/DESIGN.md contract):
each method × train/eval mode × a zoo model and a user's model, called with autograd on and off."""

from __future__ import annotations

import pytest
import torch

from convscope.explain import create_method, list_methods
from convscope.explain.metrics import deletion_insertion, randomization_check
from tests.explain.conftest import CAM_LAYER, zoo
from tests.untouched import assert_untouched, snapshot

SETUP = {"smoothgrad": {"n": 3}, "vargrad": {"n": 3}, "occlusion": {"window": 8, "stride": 8}}
# The deconvnet projection walks chains only: on the user's residual model, a unit below the residual block
# (conv, BatchNorm, in-place ReLU); its refusals leave the model as found too (tests/explain/test_deconvnet.py).
TARGET = {("deconvnet_projection", "user-functional"): ("stem.2", 1)}


def _prepared(name: str, train: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    model, x = zoo(name)
    model.train(train)
    if not train:  # a user may have set some modules back by hand: each module's own flag must survive
        next(m for m in model.modules() if isinstance(m, torch.nn.Dropout | torch.nn.ReLU)).train()
    # leftover gradients from the user's own training must survive too
    loss = model(x).square().mean()
    loss.backward()
    return model, x[:2].clone()


@pytest.mark.parametrize("method", list(list_methods()))
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("model_name", ["lenet5", "user-functional"])
@pytest.mark.parametrize("grad_mode", [True, False], ids=["grad", "no_grad"])
def test_every_method_leaves_the_model_as_it_found_it(method, train, model_name, grad_mode):
    model, x = _prepared(model_name, train)
    before = snapshot(model)
    m = create_method(method, model, layer=CAM_LAYER[model_name], **SETUP.get(method, {}))
    with torch.set_grad_enabled(grad_mode):
        out = m.attribute(x, TARGET.get((method, model_name), 1))
        assert torch.is_grad_enabled() == grad_mode
    assert out.shape[0] == 2 and out.shape[2:] == x.shape[2:] and torch.isfinite(out).all()
    assert not out.requires_grad
    assert_untouched(model, before)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_the_metrics_leave_the_model_as_they_found_it(train):
    model, x = _prepared("user-functional", train)
    before = snapshot(model)
    maps = create_method("saliency", model).attribute(x, 3)
    deletion_insertion(model, x, maps, 3, steps=4)
    randomization_check(lambda m: create_method("gradcam", m, layer="conv"), model, x, 3)
    assert_untouched(model, before)
