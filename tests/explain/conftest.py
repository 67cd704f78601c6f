"""Models and inputs shared by the explanation tests."""

from __future__ import annotations

import pytest
import torch

from convscope.models import create_model
from tests.usermodels import user_model


def zoo(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """A zoo model with seeded random weights, small enough for CPU tests, and a batch of inputs for it."""
    torch.manual_seed(0)
    if name == "lenet5":
        return create_model("lenet5"), torch.rand(3, 1, 28, 28)
    if name == "alexnet":
        return create_model("alexnet", num_classes=10, hidden=64), torch.rand(2, 3, 64, 64)
    if name == "vgg16":
        return create_model("vgg16", num_classes=10, hidden=64), torch.rand(2, 3, 32, 32)
    if name == "user":
        return user_model(functional=False), torch.rand(3, 3, 32, 32)
    if name == "user-functional":
        return user_model(functional=True), torch.rand(3, 3, 32, 32)
    raise KeyError(name)


# A conv layer of each model, for class-activation maps.
CAM_LAYER = {"lenet5": "features.conv2", "alexnet": "features.conv5", "vgg16": "features.conv4_3",
             "user": "conv", "user-functional": "conv"}


@pytest.fixture(params=["lenet5", "alexnet", "vgg16", "user"])
def captum_case(request) -> tuple[str, torch.nn.Module, torch.Tensor]:
    """Models on which Captum is right (every ReLU an nn.ReLU module), in eval mode."""
    model, x = zoo(request.param)
    return request.param, model.eval(), x
