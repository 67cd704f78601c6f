"""Figures of the RECOS reproduction (Kuo 2016, JVCIR; arXiv 1609.04112; docs/REFERENCE.md §3).

Compute and render apart (docs/DESIGN.md): every function takes NumPy arrays computed by
`convscope.experiments.recos` and returns PNG bytes (`figures.png_bytes`); nothing here sees a model.
Signed maps (filters, anchors, conv outputs before ReLU) use the diverging colormap centred at zero,
red positive and blue negative; maps after ReLU use the same scale as their pre-activation, so the
part ReLU removes is what turns white.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from convscope.report.figures import DIVERGING, mosaic, png_bytes

ORIGINAL, INVERTED = "#1f77b4", "#d62728"  # blue / red for the two polarities
GREY = "#9aa0a6"


def polarity_bars(labels: Sequence[str], mean: np.ndarray, std: np.ndarray,
                  published: dict[str, tuple[float, float]] | None = None) -> bytes:
    """Accuracy of each network on original and inverted test digits, grouped bars with ±1 std.

    Args:
        labels: one name per network.
        mean, std: (networks, 2) accuracies in [0, 1]; column 0 original, column 1 inverted.
        published: label -> (original, inverted) published accuracies, drawn as black ticks.
    """
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    fig = Figure(figsize=(9.6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    for j, (name, colour) in enumerate((("original test set", ORIGINAL), ("inverted test set (1 − x)", INVERTED))):
        pos = x + (j - 0.5) * 0.38
        ax.bar(pos, 100 * mean[:, j], 0.36, yerr=100 * std[:, j], color=colour, label=name, capsize=3)
        for p, v in zip(pos, mean[:, j], strict=True):
            ax.text(p, 100 * v + 1.5, f"{100 * v:.1f}", ha="center", va="bottom", fontsize=7)
    legend = "published (Kuo 2016)"
    for i, label in enumerate(labels):
        for j, v in enumerate((published or {}).get(label, ())):
            pos = i + (j - 0.5) * 0.38
            ax.plot([pos - 0.18, pos + 0.18], [100 * v, 100 * v], color="black", lw=2, label=legend)
            legend = None  # one legend entry for all the ticks
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 109)
    ax.grid(axis="y", alpha=0.3)
    return png_bytes(fig)


def anchor_figure(weight: np.ndarray) -> bytes:
    """The conv1 filters as unit anchor vectors a_k (top) and their opposites −a_k (bottom).

    Args:
        weight: (K, 1, kh, kw) conv1 weights; each filter is divided by its norm.
    """
    flat = weight.reshape(len(weight), -1)
    anchors = (flat / np.linalg.norm(flat, axis=1, keepdims=True)).reshape(len(weight), *weight.shape[2:])
    peak = float(np.abs(anchors).max()) or 1.0
    k = len(anchors)
    fig = Figure(figsize=(1.0 + 1.05 * k, 2.6), layout="constrained")
    axes = fig.subplots(2, k, squeeze=False)
    for i in range(k):
        for row, sign in enumerate((1, -1)):
            ax = axes[row, i]
            im = ax.imshow(sign * anchors[i], cmap=DIVERGING, vmin=-peak, vmax=peak)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{'' if sign > 0 else '−'}a{i}", fontsize=8)
    axes[0, 0].set_ylabel("anchor", fontsize=8)
    axes[1, 0].set_ylabel("opposite", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.8, label="weight / ‖W_k‖")
    return png_bytes(fig)


def correlation_histograms(raw: tuple[np.ndarray, np.ndarray], centred: tuple[np.ndarray, np.ndarray],
                           bins: int = 41) -> bytes:
    """Histograms of patch–anchor correlations for original and inverted inputs, one column per anchor.

    Args:
        raw: (original, inverted), each (n, K) cosines of the raw patches (NaN rows allowed).
        centred: the same for mean-removed patches, where inversion flips the sign exactly.
        bins: histogram bins over [−1, 1].
    """
    k = raw[0].shape[1]
    edges = np.linspace(-1, 1, bins + 1)
    fig = Figure(figsize=(1.2 + 1.9 * k, 4.2), layout="constrained")
    axes = fig.subplots(2, k, sharex=True, squeeze=False)
    for row, (pair, what) in enumerate(((raw, "raw patch"), (centred, "centred patch"))):
        for i in range(k):
            ax: Axes = axes[row, i]
            ax.axvspan(-1, 0, color=GREY, alpha=0.18, lw=0)
            ax.hist(_finite(pair[0][:, i]), edges, color=ORIGINAL, alpha=0.45, label="original", density=True)
            ax.hist(_finite(pair[1][:, i]), edges, color=INVERTED, histtype="step", lw=1.4, label="inverted",
                    density=True)
            ax.set_yticks([])
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title(f"anchor a{i}", fontsize=9)
            if i == 0:
                ax.set_ylabel(f"{what}\ndensity", fontsize=8)
            if row == 1:
                ax.set_xlabel("cos(patch, a_k)", fontsize=8)
    axes[0, 0].text(-0.95, 0.97, "ReLU\ndiscards", transform=axes[0, 0].get_xaxis_transform(), fontsize=7,
                    va="top", color="#5f6368")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    return png_bytes(fig)


def linear_templates(A: np.ndarray, shape: tuple[int, int] = (28, 28)) -> bytes:
    """The rows of the collapsed affine map of the linear network, one image per class.

    Args:
        A: (classes, H·W) matrix of model(x) = A·vec(x) + b.
        shape: (H, W) of the input.
    """
    planes = A.reshape(len(A), *shape)
    peak = float(np.abs(planes).max()) or 1.0
    fig = Figure(figsize=(1.2 + 1.1 * len(planes), 1.9), layout="constrained")
    axes = fig.subplots(1, len(planes), squeeze=False)[0]
    for c, ax in enumerate(axes):
        im = ax.imshow(planes[c], cmap=DIVERGING, vmin=-peak, vmax=peak)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"class {c}", fontsize=8)
    fig.colorbar(im, ax=list(axes), shrink=0.9, label="∂logit/∂pixel")
    return png_bytes(fig)


def background_gallery(backgrounds: np.ndarray, examples: np.ndarray) -> bytes:
    """The textures (top row) and digits composited on them (bottom row), grey levels in [0, 1]."""
    n = max(len(backgrounds), len(examples))
    fig = Figure(figsize=(0.6 + 1.0 * n, 2.3), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    for row, planes in enumerate((backgrounds, examples)):
        for i in range(n):
            ax = axes[row, i]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.axis("off") if i >= len(planes) else ax.imshow(planes[i], cmap="gray", vmin=0, vmax=1)
            if row == 0:
                ax.set_title(f"bg {i}", fontsize=8)
    return png_bytes(fig)


def background_maps(images: np.ndarray, maps: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """For each input (row), its conv maps before and after ReLU, layer by layer (columns).

    Args:
        images: (n, H, W) inputs in [0, 1].
        maps: layer label -> (before, after), each (n, C, h, w). Each panel (one input, one layer,
            before or after) is scaled by its own largest |value|, so what survives ReLU stays visible.
    """
    n = len(images)
    cols = [("input", None)] + [(f"{name}\n{when} ReLU", (name, j)) for name in maps for j, when in
                                enumerate(("before", "after"))]
    grids = {}  # layer -> (rows, cols) of its mosaic: near square, wider than tall
    for name, pair in maps.items():
        ncols = int(np.ceil(np.sqrt(pair[0].shape[1])))
        grids[name] = (int(np.ceil(pair[0].shape[1] / ncols)), ncols)
    widths = [1.0] + [grids[c[1][0]][1] / grids[c[1][0]][0] * 0.9 for c in cols[1:]]
    fig = Figure(figsize=(1.0 + 2.0 * sum(widths), 0.5 + 1.9 * n), layout="constrained")
    axes = fig.subplots(n, len(cols), squeeze=False, gridspec_kw={"width_ratios": widths})
    im = None
    for r in range(n):
        for c, (title, key) in enumerate(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if key is None:
                ax.imshow(images[r], cmap="gray", vmin=0, vmax=1)
                continue
            name, j = key
            planes = maps[name][j][r]  # (C, h, w)
            peak = float(np.abs(planes).max()) or 1.0
            im = ax.imshow(mosaic(planes / peak, grids[name][1], gap=1), cmap=DIVERGING, vmin=-1, vmax=1)
            for side in ax.spines.values():
                side.set_color(GREY)
    if im is not None:
        fig.colorbar(im, ax=axes[:, -1].tolist(), shrink=0.6, label="value / panel's max |value|")
    return png_bytes(fig)


def clustering_by_depth(layers: Sequence[str], knn: tuple[np.ndarray, np.ndarray],
                        ratio: tuple[np.ndarray, np.ndarray], parts: Sequence[str]) -> bytes:
    """k-NN accuracy and scatter ratio by depth (mean ± std over seeds), FE and DM parts shaded.

    Args:
        layers: layer names, input first.
        knn, ratio: (mean, std) arrays, one value per layer.
        parts: one of "input", "FE" (feature extraction), "DM" (decision making) per layer.
    """
    x = np.arange(len(layers))
    fig = Figure(figsize=(9.6, 5.2), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    shades = {"FE": ("#e8f0fe", "feature extraction (model.features)"),
              "DM": ("#fef7e0", "decision (model.classifier)")}
    for ax, (mean, std), label in ((axes[0], knn, "k-NN accuracy"), (axes[1], ratio, "tr(S_B) / tr(S_W)")):
        for part, (colour, name) in shades.items():
            idx = [i for i, p in enumerate(parts) if p == part]
            if idx:
                ax.axvspan(min(idx) - 0.5, max(idx) + 0.5, color=colour, lw=0, label=name)
        mean, std = np.asarray(mean, float), np.asarray(std, float)
        ax.fill_between(x, mean - std, mean + std, color="black", alpha=0.15, lw=0)
        ax.plot(x, mean, "o-", color="black", ms=4, label="mean ± std over seeds")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
    axes[1].set_xticks(x, [n.split(".")[-1] if n != "input" else n for n in layers], rotation=30, fontsize=8)
    return png_bytes(fig)


def _finite(a: np.ndarray) -> np.ndarray:
    return a[np.isfinite(a)]


__all__ = ["anchor_figure", "background_gallery", "background_maps", "clustering_by_depth",
           "correlation_histograms", "linear_templates", "polarity_bars"]
