"""Fixtures of the RECOS tests: a small MNIST subset and a LeNet-5 trained on it for one epoch."""

from __future__ import annotations

import pytest
import torch

from convscope.config import TrainConfig
from convscope.data import load_dataset
from convscope.models import create_model
from convscope.train.loop import fit


@pytest.fixture(scope="session")
def mnist_small() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """600 training and 200 test MNIST digits (class-balanced, seed 0); skipped when MNIST is absent."""
    try:
        train = load_dataset("mnist", "train").subset(600, seed=0)
        test = load_dataset("mnist", "test").subset(200, seed=0)
    except Exception as e:  # noqa: BLE001 - any failure to get the data means: not on this machine
        pytest.skip(f"MNIST is not available: {e}")
    return train.tensors(), test.tensors()


@pytest.fixture(scope="session")
def small_trained(mnist_small) -> torch.nn.Module:
    """LeNet-5 (ReLU, max pooling) trained one epoch on `mnist_small`, in train mode (as a user may leave it)."""
    (x_train, y_train), test = mnist_small
    torch.manual_seed(0)
    model = create_model("lenet5")
    fit(model, (x_train, y_train), test, TrainConfig(epochs=1, batch_size=20, device="cpu"), progress=False)
    return model.train()


def snapshot(model: torch.nn.Module) -> dict:
    """What must not change: parameters and buffers, modules, hooks, train/eval mode of every module."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "modules": [(n, type(m)) for n, m in model.named_modules()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                     for m in model.modules()),
        "modes": [m.training for m in model.modules()],
        "grad": [p.requires_grad for p in model.parameters()],
    }


def assert_untouched(model: torch.nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["modules"] == before["modules"]
    assert after["hooks"] == before["hooks"] == 0
    assert after["modes"] == before["modes"]
    assert after["grad"] == before["grad"]
    assert after["state"].keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(after["state"][k], v), k
