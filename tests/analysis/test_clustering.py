"""Layer-by-layer clustering (convscope.analysis.clustering) on synthetic clusters, LeNet-5 and a residual network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.analysis.clustering import (
    knn_accuracy,
    layer_clustering,
    representation_layers,
    scatter_ratio,
)
from convscope.errors import UserError
from convscope.hooks import activations
from convscope.models import create_model
from tests.untouched import assert_untouched, snapshot
from tests.usermodels import USER_INPUT, user_model


def blobs(spread: float, n: int = 300, classes: int = 3, dim: int = 8, seed: int = 0):
    """`classes` Gaussian clusters of unit variance whose centres lie `spread` apart along the axes."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = torch.eye(classes, dim) * spread
    return centres[y] + torch.randn(n, dim, generator=g), y


def test_separated_clusters_score_higher_than_overlapping_ones():
    x_far, y = blobs(10.0)
    x_near, _ = blobs(0.3)
    assert knn_accuracy(x_far, y) == 1.0
    assert knn_accuracy(x_near, y) < 0.7
    assert scatter_ratio(x_far, y) > 5 > 0.1 > scatter_ratio(x_near, y)


def test_scatter_ratio_against_the_scatter_matrices():
    x, y = blobs(2.0, n=60, dim=4)
    xn, yn = x.double().numpy(), y.numpy()
    mu = xn.mean(0)
    s_w = sum((xn[yn == c] - xn[yn == c].mean(0)).T @ (xn[yn == c] - xn[yn == c].mean(0)) for c in range(3))
    s_b = sum((yn == c).sum() * np.outer(xn[yn == c].mean(0) - mu, xn[yn == c].mean(0) - mu) for c in range(3))
    assert scatter_ratio(x, y) == pytest.approx(np.trace(s_b) / np.trace(s_w), rel=1e-12)
    assert scatter_ratio(37.0 * x, y) == pytest.approx(scatter_ratio(x, y), rel=1e-9)  # scale-free
    assert scatter_ratio(x.view(60, 2, 2), y) == pytest.approx(scatter_ratio(x, y))  # flattened per sample


def test_knn_against_a_brute_force_vote():
    x, y = blobs(1.5, n=120, dim=3, seed=2)
    k, n_ref = 5, 60
    perm = torch.randperm(120, generator=torch.Generator().manual_seed(7))
    ref, query = perm[:n_ref], perm[n_ref:]
    correct = 0
    for q in query.tolist():  # majority of the k nearest; a tie goes to the class of the nearer neighbours
        order = torch.cdist(x[q:q + 1], x[ref])[0].argsort()[:k]
        labels = y[ref][order].tolist()
        counts = {c: labels.count(c) for c in labels}
        best = max(counts.values())
        pred = next(c for c in labels if counts[c] == best)
        correct += pred == y[q].item()
    assert knn_accuracy(x, y, k=k, seed=7, chunk=7) == pytest.approx(correct / len(query))
    with pytest.raises(ValueError, match="empty"):
        knn_accuracy(x, y, reference_fraction=1.0)


def test_layer_clustering_of_lenet_keeps_the_order_and_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = create_model("lenet5")
    x, y = torch.rand(40, 1, 28, 28), torch.arange(40) % 4
    before = snapshot(model)
    names = representation_layers(model)
    assert names == ["features.conv1", "features.relu1", "features.pool1", "features.conv2", "features.relu2",
                     "features.pool2", "classifier.fc1", "classifier.relu3", "classifier.fc2", "classifier.relu4",
                     "classifier.fc3"]  # no flatten: it only reshapes pool2
    result = layer_clustering({"input": x, **activations(model, x, names)}, y, k=3)
    assert result.layers == ["input", *names]
    assert len(result.knn_acc) == len(result.scatter_ratio) == 12
    assert all(0 <= a <= 1 for a in result.knn_acc) and all(r >= 0 for r in result.scatter_ratio)
    assert_untouched(model, before)


def test_a_residual_network_gives_the_layers_that_run_once_in_forward_order():
    model = user_model()
    x = torch.rand(6, *USER_INPUT)
    before = snapshot(model)
    names = representation_layers(model, x)
    # by hand from UserNet.forward: block.relu runs twice, F.relu is no module, dropout is a no-op
    assert names == ["stem.0", "stem.1", "stem.2", "block.conv1", "block.bn1", "block.conv2", "block.bn2", "conv",
                     "pool", "fc"]
    reps = activations(model, x, names)  # the module docstring's recipe, on a residual network
    assert_untouched(model, before)
    with torch.no_grad():  # oracle for the in-place ReLU's record: the stem by hand, BatchNorm in eval mode
        conv, bn = model.stem[0], model.stem[1]
        stem = F.relu(F.batch_norm(conv(x), bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps))
    torch.testing.assert_close(reps["stem.2"], stem)
    result = layer_clustering({"input": x, **reps}, torch.arange(6) % 2, k=1)
    assert result.layers == ["input", *names] and list(reps) == names


def test_a_layer_run_twice_is_refused_with_the_way_out():
    with pytest.raises(UserError, match=r"'block.relu' runs more than once.*representation_layers\(model, x\)"):
        activations(user_model(), torch.rand(2, *USER_INPUT), ["block.relu"])


class _Spare(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(3, 3)  # registered first, never run
        self.fc = nn.Linear(3, 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.fc(x))


def test_without_an_input_the_leaf_layers_are_listed_in_registration_order():
    model = _Spare()
    assert representation_layers(model) == ["spare", "fc", "relu"]  # nothing to trace
    assert representation_layers(model, torch.rand(4, 3)) == ["fc", "relu"]
    model.input_shape = (3,)
    assert representation_layers(model) == ["fc", "relu"]


def test_the_scatter_ratio_does_not_depend_on_the_thread_count():
    """torch splits a long sum between threads, so summing with torch gave another last digit on 1 thread than
    on 2 for these (10000, 100) features (and two 1-thread processes differed from one 2-thread process)."""
    torch.manual_seed(0)
    x, y = torch.rand(10000, 100) ** 3, torch.randint(0, 10, (10000,))
    threads = torch.get_num_threads()
    try:
        got = []
        for t in (1, 2):
            torch.set_num_threads(t)
            got.append(scatter_ratio(x, y))
    finally:
        torch.set_num_threads(threads)
    assert got[0] == got[1]
