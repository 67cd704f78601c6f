"""Pairing filters of opposite phase (Shang, Sohn, Almeida and Lee, ICML 2016, §2.1).

For the unit-length filters φ_1..φ_n of one conv layer, the *pairing filter* of φ_i is the filter
most opposed to it, φ̄_i = argmin_{j≠i} ⟨φ_i, φ_j⟩, and μ_i = ⟨φ_i, φ̄_i⟩ ∈ [−1, 1]. μ_i near −1
means the layer has learned φ_i and (nearly) −φ_i: the lower layers of a ReLU network keep both
phases of a feature, which is what motivates CReLU. The baseline is the same statistic for as many
i.i.d. standard-normal filters of the same shape, normalised (docs/REFERENCE.md §4); in high dimension
its μ sits slightly below 0, so a histogram centred well below it is the signature of pairing.

Example:
    >>> stats = pairing_by_layer(create_model("lenet5"))
    >>> stats["features.conv1"].summary()["mu_mean"]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convscope.errors import UserError
from convscope.hooks import conv_layers, conv_weight, get_layer


@dataclass
class Pairing:
    """Pairing statistics of one layer: μ_i and the pairing index of each filter, plus the random baseline."""

    layer: str
    mu: np.ndarray  # (n,) cosine between each filter and its most opposed partner
    pair: np.ndarray  # (n,) index of that partner
    mu_random: np.ndarray  # (n,) the same for i.i.d. Gaussian filters of the same shape

    def summary(self) -> dict[str, float]:
        return {
            "mu_mean": float(self.mu.mean()),
            "mu_median": float(np.median(self.mu)),
            "frac_below_minus_half": float((self.mu < -0.5).mean()),
            "mu_mean_random": float(self.mu_random.mean()),
            "mu_median_random": float(np.median(self.mu_random)),
            "frac_below_minus_half_random": float((self.mu_random < -0.5).mean()),
        }


def pairing(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """μ_i = min_{j≠i} ⟨φ_i, φ_j⟩ for unit-normalised filters, and the argmin j.

    Args:
        weight: `(n, ...)` filters (a conv weight `(out, in, kh, kw)`), n ≥ 2.

    Returns:
        `(mu, pair)`, each of shape `(n,)`.
    """
    if weight.shape[0] < 2:
        raise ValueError(f"pairing needs at least 2 filters, got {weight.shape[0]}")
    phi = weight.detach().flatten(1).double()  # (n, d)
    phi = phi / phi.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = phi @ phi.T  # (n, n)
    cos.fill_diagonal_(float("inf"))  # a filter is not its own partner
    mu, pair = cos.min(dim=1)
    return mu, pair


def random_pairing(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """μ for i.i.d. standard-normal filters of `shape` (the paper's random baseline), from a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    return pairing(torch.randn(*shape, generator=gen, dtype=torch.float64))[0]


def pairing_by_layer(model: nn.Module, layers: list[str] | None = None, seed: int = 0) -> dict[str, Pairing]:
    """Pairing statistics for every conv layer of `model` (or the named ones), with the random baseline.

    Only reads the weights: the model is not run and not changed. A named layer that is not a
    convolution (`hooks.conv_layers`) is refused; a conv with a single filter has no pair and is skipped.
    """
    convs = conv_layers(model)
    out = {}
    for name in layers or convs:
        module = get_layer(model, name)
        if name not in convs:
            raise UserError(f"Layer {name!r} is a {type(module).__name__}, not a convolution, and pairing compares "
                            f"conv filters: name one of {', '.join(convs) or 'the conv layers (this model has none)'}.")
        w = conv_weight(module)
        if w.shape[0] < 2:
            continue
        mu, pair = pairing(w)
        out[name] = Pairing(name, mu.cpu().numpy(), pair.cpu().numpy(), random_pairing(tuple(w.shape), seed).numpy())
    return out


__all__ = ["Pairing", "pairing", "pairing_by_layer", "random_pairing"]
