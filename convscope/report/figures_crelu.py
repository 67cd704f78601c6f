"""Figures of the CReLU study (Shang, Sohn, Almeida and Lee, ICML 2016; docs/REFERENCE.md §4).

Compute and render apart (docs/DESIGN.md): every function takes arrays computed by
`convscope.experiments.crelu` and returns PNG bytes; nothing here sees a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from convscope.report.figures import png_bytes

LEARNED, RANDOM = "#1f77b4", "#9aa0a6"


def pairing_histograms(title: str, mu: Mapping[str, np.ndarray], mu_random: Mapping[str, np.ndarray]) -> bytes:
    """One panel per layer: the histogram of μ for the learned filters against random Gaussian ones."""
    names = list(mu)
    fig = Figure(figsize=(2.6 * max(len(names), 1) + 0.6, 2.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(names), 1), sharey=False))
    bins = np.linspace(-1, 1, 41)
    for ax, name in zip(axes, names, strict=False):
        ax.hist(mu_random[name], bins=bins, color=RANDOM, alpha=0.7, label="random")
        ax.hist(mu[name], bins=bins, color=LEARNED, alpha=0.75, label="learned")
        ax.axvline(float(np.mean(mu[name])), color=LEARNED, linestyle="--", linewidth=1)
        ax.axvline(float(np.mean(mu_random[name])), color="0.35", linestyle="--", linewidth=1)
        ax.set_title(name.split(".")[-1], fontsize=9)
        ax.set_xlabel("μ (cosine with pairing filter)", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return png_bytes(fig)


def variant_errors(variants: Sequence[str], mean: np.ndarray, std: np.ndarray, params: Sequence[int],
                   published: Mapping[str, float], dataset: str) -> bytes:
    """Test error of each variant (bars, ±1 std) beside the paper's CIFAR-10 errors (ticks, right axis)."""
    fig = Figure(figsize=(7.2, 3.4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(variants))
    ax.bar(x, mean, 0.55, yerr=std, color=LEARNED, capsize=3, label=f"measured on {dataset}")
    for i, (m, p) in enumerate(zip(mean, params, strict=True)):
        ax.text(i, m + (std[i] if len(std) else 0) + 0.2, f"{m:.2f} %\n{p / 1e6:.2f}M", ha="center",
                va="bottom", fontsize=7)
    ax.set_xticks(x, variants, fontsize=8)
    ax.set_ylabel(f"test error on {dataset} (%)")
    ax.set_ylim(0, max(float(np.max(mean + std)) * 1.35, 1))
    twin = ax.twinx()
    pub = [published.get(v, np.nan) for v in variants]
    twin.plot(x, pub, "k_", markersize=22, markeredgewidth=2, label="published, CIFAR-10 (Shang et al. Table 1)")
    twin.set_ylabel("published CIFAR-10 error (%)", fontsize=8)
    twin.set_ylim(0, max(np.nanmax(pub) * 1.35, 1))
    lines = ax.get_legend_handles_labels()
    tl = twin.get_legend_handles_labels()
    ax.legend(lines[0] + tl[0], lines[1] + tl[1], fontsize=7, frameon=False, loc="upper left")
    return png_bytes(fig)


def invariance_curves(layers: Sequence[str], scores: Mapping[str, Mapping[str, Sequence[float]]]) -> bytes:
    """One panel per transformation: the invariance score by layer, one line per model."""
    transforms = sorted({t for per_model in scores.values() for t in per_model})
    fig = Figure(figsize=(3.3 * max(len(transforms), 1), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(transforms), 1)))
    x = np.arange(1, len(layers) + 1)
    for ax, t in zip(axes, transforms, strict=False):
        for model, per_model in scores.items():
            ax.plot(x, per_model[t], "-o", markersize=3, linewidth=1.4, label=model)
        ax.set_title(t, fontsize=9)
        ax.set_xticks(x, [name.split(".")[-1] for name in layers], fontsize=7, rotation=45)
        ax.set_ylabel("invariance score L/G", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, frameon=False)
    return png_bytes(fig)


def reconstructions(rows: Mapping[str, np.ndarray]) -> bytes:
    """A grid of grey images: one row per caption (the input, then each reconstruction of it)."""
    names = list(rows)
    n = len(next(iter(rows.values())))
    fig = Figure(figsize=(1.1 * n + 2.2, 1.15 * len(names)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(names), n))
    for r, name in enumerate(names):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(rows[name][c], 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    return png_bytes(fig)
