"""Shared fixtures: tiny synthetic data, and the real MNIST subset when it can be had."""

from __future__ import annotations

import os

import pytest
import torch

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
