"""Layer-by-layer clustering: how well each layer's representation separates the classes.

Kuo's RECOS reading of a CNN (Kuo, "Understanding convolutional neural networks with a mathematical
model", JVCIR 41, 2016, arXiv 1609.04112; docs/REFERENCE.md §3) splits it into a feature-extraction part
(the conv/pool layers, `model.features`) that clusters inputs step by step and a decision part (the
fully connected layers, `model.classifier`) that maps the clusters to labels. Two numbers per layer
measure that clustering on held-out images:

- k-nearest-neighbour accuracy: the representations are split (seeded) into a reference half and a
  query half; each query gets the majority label of its k nearest references (Euclidean distance,
  ties broken by the nearer neighbours). Distances are computed in chunks with `torch.cdist`.
- the scatter ratio trace(S_B) / trace(S_W) of Fisher's discriminant analysis, with
  S_W = Σ_c Σ_{i∈c} (x_i − μ_c)(x_i − μ_c)ᵀ and S_B = Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ, so
  trace(S_W) = Σ_i ‖x_i − μ_{c(i)}‖² and trace(S_B) = Σ_c n_c ‖μ_c − μ‖²; it does not change when a
  layer's features are scaled, so layers of different sizes and ranges compare.

Both figures need every held-out image's representation, so `clustering_scan` computes them batch by batch
and, with `distributed=True` in a `torch.distributed` process group, each rank runs the forward passes of its
share of the batches (`shards.rank_batches`), the representations are put back in dataset order on every
rank (`shards.gather_examples`), the k-NN queries' chunks are dealt out too, their correct votes summed, and
each rank computes the scatter ratios of its share of the layers (`shards.share_out`): the one-process figures
exactly.

Example:
    >>> names = representation_layers(model, x)              # every layer that runs once, in forward order
    >>> reps = {"input": x, **activations(model, x, names)}
    >>> result = layer_clustering(reps, y, k=5)              # one knn_acc and scatter_ratio per layer
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convscope.hooks import activations, eval_mode, model_device, trace_modules
from convscope.shards import gather_examples, rank_batches, share_out, sum_over_ranks


@dataclass
class LayerClustering:
    """Clustering figures per layer, in the order the representations were given."""

    layers: list[str]
    knn_acc: list[float]
    scatter_ratio: list[float]


def representation_layers(model: nn.Module, x: torch.Tensor | None = None) -> list[str]:
    """Dotted names of the model's leaf layers that run exactly once per forward pass, in the order they run.

    Reshapes and no-ops (`nn.Flatten`, `nn.Identity`, `nn.Dropout`) are left out: their output is the
    previous layer's representation again. So is a module that runs more than once (one ReLU module
    reused in a residual block: it has no one output to record) or never. Which modules run, and in what
    order, comes from one forward pass of `x[:1]` (or of zeros of `model.input_shape`), in eval mode and
    without gradients. A model with neither gets its leaf layers in registration order, unchecked.
    """
    skip = (nn.Flatten, nn.Identity, nn.Dropout)
    names = [name for name, m in model.named_modules()
             if name and not any(True for _ in m.children()) and not isinstance(m, skip)]
    shape = getattr(model, "input_shape", None)
    if x is None and shape is None:
        return names
    if x is None:
        x = torch.zeros(1, *shape, dtype=next((p.dtype for p in model.parameters()), torch.float32))
    calls: dict[str, int] = {}  # name -> times run, in the order of first run
    wanted = set(names)

    def count(name: str, _module: nn.Module, _inputs: tuple, _output: object) -> None:
        if name in wanted:
            calls[name] = calls.get(name, 0) + 1

    with torch.no_grad(), eval_mode(model), trace_modules(model, lambda *_: None, count):
        model(x[:1].to(model_device(model)))
    return [name for name, n in calls.items() if n == 1]


@torch.no_grad()
def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = 5, reference_fraction: float = 0.5,
                 seed: int = 0, chunk: int = 1024, distributed: bool = False) -> float:
    """Accuracy of a k-NN classifier fitted on a seeded part of (features, labels), scored on the rest.

    Args:
        features: (N, ...) representations; flattened per sample.
        labels: (N,) integer classes.
        k: neighbours voting.
        reference_fraction: share of the samples used as references; the others are the queries.
        seed: seed of the split.
        chunk: queries per `cdist` call (memory is chunk × references).
        distributed: every rank holds all of (features, labels) and votes on its share of the query chunks;
            all get the one-process accuracy.
    """
    x = features.flatten(1).float()  # (N, D)
    y = labels.to(x.device)
    n = len(x)
    n_ref = int(round(n * reference_fraction))
    if not 0 < n_ref < n:
        raise ValueError(f"a reference/query split of {n} samples at {reference_fraction} leaves one side empty")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(x.device)
    ref, query = perm[:n_ref], perm[n_ref:]
    k = min(k, n_ref)
    num_classes = int(y.max()) + 1
    # The nearest neighbour weighs 1 + k·eps, the k-th 1 + eps: a tie in counts goes to the nearer ones.
    weights = 1 + 1e-3 * torch.arange(k, 0, -1, device=x.device, dtype=torch.float64)  # (k,)
    correct = torch.zeros((), dtype=torch.int64)
    x_ref, y_ref = x[ref], y[ref]  # (n_ref, D), (n_ref,): copied once, not once per chunk
    for part in rank_batches(len(query), chunk) if distributed else torch.arange(len(query)).split(chunk):
        q = query[part.to(x.device)]
        dist = torch.cdist(x[q], x_ref)  # (chunk, n_ref)
        nearest = dist.topk(k, dim=1, largest=False).indices  # (chunk, k), nearest first
        votes = torch.zeros(len(q), num_classes, dtype=torch.float64, device=x.device)
        votes.scatter_add_(1, y_ref[nearest], weights.expand(len(q), k))
        correct += int((votes.argmax(1) == y[q]).sum())
    return int(sum_over_ranks(correct) if distributed else correct) / len(query)


def scatter_ratio(features: torch.Tensor, labels: torch.Tensor) -> float:
    """trace(S_B) / trace(S_W) of (features, labels), in float64 (see the module docstring).

    Summed by NumPy on one thread, in a fixed order: the same float whatever the thread count (torch splits a
    large sum between its threads, so one process of 2 threads and two processes of 1 would differ in the last
    digit)."""
    x = features.detach().flatten(1).to("cpu", torch.float64).numpy()  # (N, D)
    y = labels.cpu().numpy()
    mean = x.mean(axis=0)  # (D,)
    between, within = 0.0, 0.0
    for c in np.unique(y):
        xc = x[y == c]  # (n_c, D)
        mc = xc.mean(axis=0)
        between += len(xc) * float(((mc - mean) ** 2).sum())
        within += float(((xc - mc) ** 2).sum())
    return between / within if within > 0 else float("inf")


def layer_clustering(representations: dict[str, torch.Tensor], labels: torch.Tensor, k: int = 5,
                     seed: int = 0, chunk: int = 1024, distributed: bool = False) -> LayerClustering:
    """k-NN accuracy and scatter ratio of each representation (e.g. from `hooks.activations`).

    Args:
        representations: layer name -> (N, ...) outputs on the same N held-out images.
        labels: (N,) classes of those images.
        k: neighbours of the k-NN vote.
        seed: seed of the reference/query split (the same split for every layer).
        chunk: k-NN queries per `cdist` call (`knn_accuracy`).
        distributed: the k-NN query chunks are shared out over the ranks (`knn_accuracy`).
    """
    names = list(representations)
    return LayerClustering(
        layers=names,
        knn_acc=[knn_accuracy(representations[n], labels, k=k, seed=seed, chunk=chunk, distributed=distributed)
                 for n in names],
        scatter_ratio=share_out(lambda n: scatter_ratio(representations[n], labels), names) if distributed
        else [scatter_ratio(representations[n], labels) for n in names],
    )


def clustering_scan(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, layers: list[str] | None = None, *,
                    k: int = 5, seed: int = 0, batch_size: int = 256, chunk: int = 1024,
                    distributed: bool = False) -> LayerClustering:
    """`layer_clustering` of the input and of each layer's outputs on the held-out images `x` (N, C, H, W).

    Args:
        layers: dotted names (default: `representation_layers(model, x)`).
        batch_size: images per forward pass.
        chunk: k-NN queries per `cdist` call.
        distributed: `x` and `labels` are the whole set on every rank of the process group; each runs its share
            of the batches and all get the one-process figures (in one process: the plain pass).

    Example:
        >>> clustering_scan(model, x_test, y_test, k=5).knn_acc     # one accuracy per representation
    """
    names = list(layers) if layers is not None else representation_layers(model, x)
    batches = rank_batches(len(x), batch_size) if distributed else list(torch.arange(len(x)).split(batch_size))
    parts = [activations(model, x[i], names) for i in batches]
    index = torch.cat(batches) if batches else torch.zeros(0, dtype=torch.long)
    reps = {"input": x}
    for name in names:
        mine = torch.cat([p.pop(name) for p in parts]) if parts else torch.zeros(0)  # (n_rank, ...)
        reps[name] = gather_examples(mine, index, len(x)) if distributed else mine
    return layer_clustering(reps, labels, k=k, seed=seed, chunk=chunk, distributed=distributed)


__all__ = ["LayerClustering", "clustering_scan", "knn_accuracy", "layer_clustering", "representation_layers",
           "scatter_ratio"]
