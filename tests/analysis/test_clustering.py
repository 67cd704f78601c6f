"""Layer-by-layer clustering (convscope.analysis.clustering) on synthetic clusters and on LeNet-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.analysis.clustering import (
    knn_accuracy,
    layer_clustering,
    representation_layers,
    scatter_ratio,
)
from convscope.hooks import activations
from convscope.models import create_model
from tests.untouched import assert_untouched, snapshot


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
