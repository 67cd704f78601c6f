"""Shared fixtures: tiny synthetic data, and the real MNIST subset when it can be had."""

from __future__ import annotations

import os

import pytest
import torch

from convscope.config import TrainConfig
from convscope.data import load_dataset
from convscope.models import create_model
from convscope.train.loop import fit

# Two pytest-xdist workers share two cores: one intra-op thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture
def tiny_data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """512 train / 128 test random 1×28×28 images whose class is a planted bright square's position."""
    g = torch.Generator().manual_seed(0)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 10, (n,), generator=g)
        x = torch.rand(n, 1, 28, 28, generator=g) * 0.2
        for i, c in enumerate(y.tolist()):
            r, col = divmod(c, 5)
            x[i, 0, 4 + 10 * r:10 + 10 * r, 2 + 5 * col:6 + 5 * col] = 1.0
        return x, y

    return make(512), make(128)


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
