"""Figures of `reproduce parts`, the role of each part of a CNN, drawn from saved arrays.

The sections follow the textbook convolution chapter (Qiu Xipeng, *Neural Networks and Deep Learning*,
ch. 5; docs/REFERENCE.md §1) and Kuo's RECOS article (§3):

- `filter_responses`: Sobel, Gaussian and Laplacian kernels applied to photographs.
- `pooling_example`: one noisy photograph's edge map, max- and average-pooled, beside the clean ones.
- `noise_curves`: any figure by noise level (edge survival, accuracy under test noise).
- `loss_curves`: training loss by step for each input treatment and learning rate, side by side.
- `linear_collapse`: an activation-free LeNet-5 as one matrix: its rows as images and its outputs.
- `image_grid`: images found by gradient ascent, one per conv filter, a block per layer.
- `depth_bars`: the counted depth of every model of the zoo.

Like figures.py: arrays in, PNG bytes out, `Figure` objects only (no pyplot), nothing computed here.
Signed maps use the diverging colormap centred at zero; intensities (photos, smoothed photos,
visualised inputs) are grey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from convscope.report.figures import BACKGROUND, DIVERGING, mosaic, png_bytes


def _signed(ax, img: np.ndarray, peak: float | None = None, interpolation: str = "nearest"):
    """Show a signed map on the diverging scale ±peak (its own max |value| by default).

    "nearest" keeps a small kernel's cells crisp; "antialiased" avoids moiré in a map shrunk to fit.
    """
    peak = peak or float(np.abs(img).max()) or 1.0
    return ax.imshow(img, cmap=DIVERGING, vmin=-peak, vmax=peak, interpolation=interpolation)


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def filter_responses(images: np.ndarray, responses: np.ndarray, names: Sequence[str], kernels: np.ndarray,
                     signed: Sequence[bool], image_names: Sequence[str]) -> bytes:
    """A grid: the kernels on top, then one row per image: the image and its response to each kernel.

    Args:
        images: grey images `(n, H, W)` in [0, 1] (cropped to the responses' region for a narrow convolution).
        responses: `(n, K, H, W)`, the response of image i to kernel k.
        names: the K kernel names.
        kernels: `(K, k, k)` (zero-padded to one size).
        signed: per kernel, whether its response is signed (diverging colours, centred at 0) or an
            intensity (grey, e.g. a Gaussian blur).
        image_names: the n image names.
    """
    n, k = len(images), len(names)
    fig = Figure(figsize=(1.9 * (k + 1), 1.9 * (n + 1) + 0.3), layout="constrained")
    axes = fig.subplots(n + 1, k + 1)
    axes[0, 0].axis("off")
    axes[0, 0].text(0.5, 0.5, "kernel →\nimage ↓", ha="center", va="center", fontsize=10)
    for j in range(k):
        ax = axes[0, j + 1]
        _signed(ax, kernels[j]) if signed[j] else ax.imshow(kernels[j], cmap="gray", interpolation="nearest")
        ax.set_title(names[j], fontsize=10)
        _bare(ax)
    for i in range(n):
        axes[i + 1, 0].imshow(images[i], cmap="gray", vmin=0, vmax=1)
        axes[i + 1, 0].set_ylabel(image_names[i], fontsize=10)
        _bare(axes[i + 1, 0])
        for j in range(k):
            ax = axes[i + 1, j + 1]
            if signed[j]:  # ±(99.5th percentile of |value|): a few strong edges would wash out the rest
                _signed(ax, responses[i, j], float(np.percentile(np.abs(responses[i, j]), 99.5)) or None,
                        interpolation="antialiased")
            else:
                ax.imshow(responses[i, j], cmap="gray", vmin=0, vmax=1)
            _bare(ax)
    fig.suptitle("red = positive, blue = negative, white = 0; each map on its own scale, saturating at the "
                 "99.5th percentile of |value|", fontsize=9)
    return png_bytes(fig)


def pooling_example(maps: Mapping[str, np.ndarray], sigma: float, size: int) -> bytes:
    """The clean and noisy edge maps of one image, then both max- and average-pooled (`pooled_examples`)."""
    fig = Figure(figsize=(11.5, 4.6), layout="constrained")
    axes = fig.subplots(2, 4)
    rows = (("clean", None), ("noisy", maps["noisy"]))
    for r, (which, inp) in enumerate(rows):
        ax = axes[r, 0]
        if inp is None:
            ax.axis("off")
            ax.text(0.5, 0.5, f"clean input\n(row 2: noise σ = {sigma:g})", ha="center", va="center", fontsize=10)
        else:
            ax.imshow(inp, cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"input + noise σ = {sigma:g}", fontsize=10)
            _bare(ax)
        for c, (key, title) in enumerate((("edges", "ReLU(Sobel) edge map"), ("max", f"max pool {size}×{size}"),
                                          ("avg", f"average pool {size}×{size}"))):
            ax = axes[r, c + 1]
            img = maps[f"{which}_{key}"]
            ax.imshow(img, cmap="magma", vmin=0, vmax=float(np.percentile(maps[f"clean_{key}"], 99.5)) or 1.0,
                      interpolation="nearest")
            ax.set_title(f"{which}: {title}", fontsize=10)
            _bare(ax)
    return png_bytes(fig)


def noise_curves(sigmas: Sequence[float], series: Mapping[str, Sequence[float]], ylabel: str,
                 title: str = "", percent: bool = False, xlabel: str = "noise σ (image range 0–1)") -> bytes:
    """One line per series over the noise levels; `percent` formats a fraction axis as percent."""
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for (label, ys), marker in zip(series.items(), "osd^v<>"):
        ax.plot(sigmas, ys, f"-{marker}", markersize=4, linewidth=1.6, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=9)
    return png_bytes(fig)


def loss_curves(curves: np.ndarray, variants: Sequence[str], lrs: Sequence[float], target: float,
                window: int = 20) -> bytes:
    """Panels side by side, one per variant: training loss by step, one line per learning rate.

    `curves` is `(variants, lrs, steps)`; NaN marks the steps after a run diverged (shown as its end).
    The lines are running means over `window` steps; the dashed line is the target loss.
    """
    v = len(variants)
    fig = Figure(figsize=(3.4 * v, 3.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, v, sharey=True))
    colors = colormaps["viridis"](np.linspace(0, 0.9, len(lrs)))
    finite = curves[np.isfinite(curves)]
    top = min(float(finite.max()) if finite.size else 3.0, 4.0)
    for ax, name, rows in zip(axes, variants, curves):
        for lr, row, color in zip(lrs, rows, colors):
            good = np.isfinite(row)
            steps = np.nonzero(good)[0]
            if len(steps) < window:
                ax.plot([], [], color=color, label=f"lr {lr:g} (diverged)")
                continue
            smooth = np.convolve(row[good], np.ones(window) / window, mode="valid")
            label = f"lr {lr:g}" + ("" if good.all() else " (diverged)")
            ax.plot(steps[window - 1:] + 1, smooth, color=color, linewidth=1.4, label=label)
        ax.axhline(target, color="0.3", linestyle="--", linewidth=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.set_ylim(max(0.02, target / 10), top * 1.1)
        ax.grid(alpha=0.3, which="both")
        ax.legend(frameon=False, fontsize=7)
    axes[0].set_ylabel(f"training loss (mean of {window} steps)")
    return png_bytes(fig)


def linear_collapse(A: np.ndarray, outputs: np.ndarray, predicted: np.ndarray, shape: tuple[int, int],
                    acc: Mapping[str, float]) -> bytes:
    """The collapsed network: its 10 rows of A as images, its outputs against A·x + b, and accuracies.

    Args:
        A: `(classes, H·W)`, the one matrix.
        outputs: network outputs `(n, classes)`.
        predicted: `A·x + b` for the same inputs.
        shape: `(H, W)` to draw each row of A.
        acc: accuracy by label, e.g. {"with ReLU": 0.99, "without": 0.92}.
    """
    fig = Figure(figsize=(12.0, 3.4), layout="constrained")
    left, mid, right = fig.subfigures(1, 3, width_ratios=[2.2, 1.3, 1.0])
    rows = A.reshape(len(A), *shape)
    ncols = (len(rows) + 1) // 2
    img = mosaic(rows, ncols, gap=2, fill=np.nan)  # class k at row k // ncols, column k % ncols
    ax = left.add_subplot()
    peak = float(np.abs(rows).max()) or 1.0
    cmap = colormaps[DIVERGING].with_extremes(bad=BACKGROUND)
    im = ax.imshow(img, cmap=cmap, vmin=-peak, vmax=peak, interpolation="nearest")
    h, w = shape
    ax.set_xticks([c * (w + 2) + (w - 1) / 2 for c in range(ncols)], [str(c) for c in range(ncols)])
    ax.set_yticks([r * (h + 2) + (h - 1) / 2 for r in range(2)], ["0", str(ncols)])
    ax.tick_params(length=0, labelsize=8, labeltop=True, labelbottom=False)
    for side in ax.spines.values():
        side.set_visible(False)
    left.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title("rows of A, class k = left + top label: the network is x ↦ A·x + b", fontsize=10)
    ax = mid.add_subplot()
    ax.plot(predicted.ravel(), outputs.ravel(), ".", markersize=2, alpha=0.5)
    lo, hi = float(min(predicted.min(), outputs.min())), float(max(predicted.max(), outputs.max()))
    ax.plot([lo, hi], [lo, hi], color="0.3", linewidth=0.8, linestyle="--")
    ax.set_xlabel("A·x + b")
    ax.set_ylabel("network output")
    ax.set_title(f"max |diff| = {float(np.abs(outputs - predicted).max()):.1e}", fontsize=10)
    ax.grid(alpha=0.3)
    ax = right.add_subplot()
    bars = ax.bar(list(acc), list(acc.values()), color=["#c0392b", "#2e6da4"][: len(acc)])
    ax.bar_label(bars, labels=[f"{100 * a:.2f} %" for a in acc.values()], fontsize=9)
    ax.set_ylim(0, 1.08)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_title("test accuracy", fontsize=10)
    ax.tick_params(axis="x", labelsize=9)
    return png_bytes(fig)


def image_grid(blocks: Mapping[str, np.ndarray], ncols: int = 8, cell_px: int = 84) -> bytes:
    """Grey images `(n, 1, H, W)` in [0, 1], one titled block per key, `ncols` images to a row."""
    dpi = 100
    imgs = {k: mosaic(np.asarray(v)[:, 0], min(ncols, len(v)), gap=2, fill=np.nan) for k, v in blocks.items()}
    h = max(v.shape[2] for v in blocks.values())
    unit = cell_px / h / dpi  # inches per mosaic pixel
    heights = [img.shape[0] * unit + 0.45 for img in imgs.values()]
    width = max(img.shape[1] for img in imgs.values()) * unit + 0.5
    fig = Figure(figsize=(width, sum(heights)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(imgs), 1, height_ratios=heights))
    cmap = colormaps["gray"].with_extremes(bad=BACKGROUND)
    for ax, (title, img) in zip(axes, imgs.items()):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10, loc="left")
        ax.axis("off")
    return png_bytes(fig)


def depth_bars(depths: Mapping[str, int], published: Mapping[str, int]) -> bytes:
    """Horizontal bars of the counted depth per model, the published depths marked with a cross."""
    names = list(depths)
    fig = Figure(figsize=(6.0, 0.32 * len(names) + 1.0), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(names))
    bars = ax.barh(y, [depths[n] for n in names], color="#2e6da4")
    ax.bar_label(bars, padding=8, fontsize=8)
    ax.set_xlim(0, max(depths.values()) * 1.12)
    pub = [(i, published[n]) for i, n in enumerate(names) if n in published]
    if pub:
        ax.plot([v for _, v in pub], [i for i, _ in pub], "x", color="#c0392b", markersize=9, mew=2,
                label="published")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_yticks(y, names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("counted layers (conv + fully connected) on the longest path")
    ax.grid(alpha=0.3, axis="x")
    return png_bytes(fig)


__all__ = ["depth_bars", "filter_responses", "image_grid", "linear_collapse", "loss_curves", "noise_curves",
           "pooling_example"]
