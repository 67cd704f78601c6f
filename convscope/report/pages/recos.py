"""The atlas page of `reproduce recos`: Kuo's RECOS experiments on LeNet-5 and MNIST.

Kuo, "Understanding convolutional neural networks with a mathematical model", JVCIR 41, 2016
(arXiv 1609.04112; docs/REFERENCE.md §3). Compute and render apart (docs/DESIGN.md): the drawing
functions take the arrays `convscope.experiments.recos` saves and return PNG bytes; `RecosPage` picks
them out of a saved Result, writes the summary from its numbers, and captions each figure.
Signed maps (filters, anchors, conv outputs before and after ReLU) use the diverging colormap centred
at zero, red positive and blue negative, so what ReLU removes is the blue that turns white.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure

from convscope.report.figures import DIVERGING, mosaic, png_bytes
from convscope.report.pages import ExperimentPage, Figure, register_page
from convscope.result import Result, mean_std

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
    fig = MplFigure(figsize=(9.6, 3.8), layout="constrained")
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
    fig = MplFigure(figsize=(1.0 + 1.05 * k, 2.6), layout="constrained")
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
    fig = MplFigure(figsize=(1.2 + 1.9 * k, 4.2), layout="constrained")
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
    fig = MplFigure(figsize=(1.2 + 1.1 * len(planes), 1.9), layout="constrained")
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
    fig = MplFigure(figsize=(0.6 + 1.0 * n, 2.3), layout="constrained")
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
    fig = MplFigure(figsize=(1.0 + 2.0 * sum(widths), 0.5 + 1.9 * n), layout="constrained")
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
    fig = MplFigure(figsize=(9.6, 5.2), layout="constrained")
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


def similarity_by_depth(layers: Sequence[str], by_seed: np.ndarray) -> bytes:
    """Cosine between a layer's representation of a composite and of its bare digit, by depth.

    Args:
        layers: layer names, input first.
        by_seed: (seeds, layers) mean cosines; one thin line per seed, the mean in black.
    """
    by_seed = np.atleast_2d(np.asarray(by_seed, float))
    x = np.arange(len(layers))
    fig = MplFigure(figsize=(6.4, 3.0), layout="constrained")
    ax = fig.add_subplot()
    for row in by_seed:
        ax.plot(x, row, "-", color=GREY, lw=1)
    ax.plot(x, by_seed.mean(axis=0), "o-", color="black", ms=4, label=f"mean over {len(by_seed)} seed(s)")
    ax.set_xticks(x, [n.split(".")[-1] for n in layers], fontsize=8)
    ax.set_ylabel("cos(composite, bare digit)", fontsize=8)
    ax.set_ylim(min(0.0, float(by_seed.min()) - 0.05), 1.02)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return png_bytes(fig)


def _finite(a: np.ndarray) -> np.ndarray:
    return a[np.isfinite(a)]


# (label in the bar chart, metric prefix): the networks of the polarity study, in the article's order
POLARITY_ROWS = [("trained", "acc"), ("conv1 negated (article)", "acc_negated"),
                 ("exact swap (b + ΣW, pad 1)", "acc_exact_swap"), ("both polarities", "both_polarity_acc"),
                 ("CReLU conv1, originals", "crelu_first_acc")]


@register_page("recos")
class RecosPage(ExperimentPage):
    labels = {
        "acc_original": "accuracy, original test digits",
        "acc_inverted": "accuracy, inverted test digits (1 − x)",
        "acc_negated_original": "conv1 negated: accuracy on originals",
        "acc_negated_inverted": "conv1 negated: accuracy on inverted",
        "exact_swap_mismatches": "exact swap: predictions that differ",
        "anchor_centred_flip_max_err": "centred patch cosine: largest |cos(x) + cos(1 − x)|",
        "linear_collapse_max_abs_diff": "linear network: largest |net(x) − (A·x + b)|",
        "both_polarity_acc_original": "trained on both polarities: accuracy on originals",
        "both_polarity_acc_inverted": "trained on both polarities: accuracy on inverted",
        "crelu_first_acc_inverted": "CReLU conv1: accuracy on inverted",
    }
    percent = frozenset(f"{p}_{side}" for _, p in POLARITY_ROWS for side in ("original", "inverted")) | frozenset(
        ["acc_linear", "acc_linear_map", "acc_background", "acc_clean_model_on_background",
         "acc_background_model_on_clean"])

    def summary(self, r: Result) -> str:
        acc = {k: _mean(r, k) for k in ("acc_original", "acc_inverted", "acc_negated_original", "acc_negated_inverted",
                                        "both_polarity_acc_original", "both_polarity_acc_inverted",
                                        "crelu_first_acc_inverted", "acc_linear")}
        out = []
        if acc["acc_original"] is not None and acc["acc_inverted"] is not None:
            n = len(r.by_seed.get("acc_original") or [0])
            drop = acc["acc_original"] - acc["acc_inverted"]
            how = "but only" if drop > 0.2 else "and"
            seeds = f"mean of {n} seeds" if n > 1 else "one seed"
            out.append(f"The trained LeNet-5 scores {_pct(acc['acc_original'])} on the original MNIST test digits "
                       f"{how} {_pct(acc['acc_inverted'])} on grey-inverted ones ({seeds}; Kuo: 98.94 % and "
                       "37.36 %).")
        mismatches = r.metrics.get("exact_swap_mismatches")
        if isinstance(mismatches, int) and acc["acc_negated_original"] is not None:
            swap = ("with no prediction changed, as the mathematics says" if mismatches == 0 else
                    f"yet {mismatches} predictions changed, where the mathematics says none may")
            both = (f"; trained on both polarities it scores {_pct(acc['both_polarity_acc_original'])} and "
                    f"{_pct(acc['both_polarity_acc_inverted'])}" if acc["both_polarity_acc_inverted"] is not None
                    else "")
            if acc["crelu_first_acc_inverted"] is not None:
                both += (f", and a CReLU first layer trained on originals only {_pct(acc['crelu_first_acc_inverted'])} "
                         "on inverted ones")
            out.append(f"The exact swap (bias b + ΣW, input padded with 1) exchanges the two accuracies {swap}, while "
                       f"the article's weight-only negation gives {_pct(acc['acc_negated_original'])} on originals and "
                       f"{_pct(acc['acc_negated_inverted'])} on inverted digits{both}.")
        err = r.metrics.get("linear_collapse_max_abs_diff")
        if _number(err) and acc["acc_linear"] is not None and acc["acc_original"] is not None:
            tol = r.published.get("linear_collapse_max_abs_diff")
            bound = tol.tolerance if tol is not None and tol.tolerance is not None else 1e-4
            what = (f"is one affine map (largest deviation {err:.1g})" if err <= bound else
                    f"is not one affine map after all (deviation up to {err:.3g})")
            out.append(f"Without activations and with average pooling the network {what} and reaches "
                       f"{_pct(acc['acc_linear'])}, against {_pct(acc['acc_original'])} with them.")
        return " ".join(out)

    def figures(self, r: Result) -> list[Figure]:
        drawn = (self._polarity(r), self._anchors(r), self._correlations(r), self._linear(r),
                 self._gallery(r), self._maps(r), self._similarity(r), self._clustering(r))
        return [f for f in drawn if f is not None]

    def _polarity(self, r: Result) -> Figure | None:
        stats = [[_mean_std(r, f"{p}_{side}") for side in ("original", "inverted")] for _, p in POLARITY_ROWS]
        rows = [(label, s) for (label, _), s in zip(POLARITY_ROWS, stats, strict=True) if None not in s]
        if not rows:
            return None
        mean = np.array([[m for m, _ in s] for _, s in rows])
        std = np.array([[sd for _, sd in s] for _, s in rows])
        published = {label: tuple(r.published[f"{p}_{side}"].value for side in ("original", "inverted"))
                     for label, p in POLARITY_ROWS[:2]
                     if all(_number(getattr(r.published.get(f"{p}_{side}"), "value", None))
                            for side in ("original", "inverted"))}
        png = polarity_bars([label for label, _ in rows], mean, std, published)
        return Figure("Accuracy of each network on original (blue) and grey-inverted (red) test digits, mean ± std "
                      "over seeds; black ticks are Kuo's figures. Look for the trained network's collapse on "
                      "inverted digits, the exact swap mirroring it bar for bar, how far the article's weight-only "
                      "negation is from that mirror, and whether the two remedies keep both bars high.", png)

    def _anchors(self, r: Result) -> Figure | None:
        w = r.arrays.get("conv1_weight_by_seed")
        if w is None or w.ndim != 5:
            return None
        return Figure("The first seed's conv1 filters as unit anchor vectors a_k (top) and their opposites −a_k "
                      "(bottom): ReLU passes a patch only on the side of a_k, so an inverted digit, which turns "
                      "toward −a_k, is not seen by the same units.", anchor_figure(w[0]))

    def _correlations(self, r: Result) -> Figure | None:
        c = r.arrays.get("anchor_cosines")
        if c is None or c.ndim != 4 or c.shape[:2] != (2, 2):
            return None
        return Figure("Cosine of stroke patches (5×5) with each anchor, original (blue) against inverted (red) "
                      "digits: raw patches (top) and mean-removed patches (bottom). The centred histograms are "
                      "exact mirrors about 0; ReLU keeps only the right-hand side (shifted by each unit's bias).",
                      correlation_histograms((c[0, 0], c[0, 1]), (c[1, 0], c[1, 1])))

    def _linear(self, r: Result) -> Figure | None:
        a = r.arrays.get("linear_A")
        if a is None or a.ndim != 2:
            return None
        side = int(round(np.sqrt(a.shape[1])))
        if side * side != a.shape[1]:
            return None
        return Figure("The network without activations (average pooling) collapsed to one affine map A·x + b: "
                      "each row of A is one template per class. Every class is a single linear filter of the "
                      "whole image, however many layers were stacked.", linear_templates(a, (side, side)))

    def _gallery(self, r: Result) -> Figure | None:
        bgs, examples = r.arrays.get("backgrounds"), r.arrays.get("background_examples")
        if bgs is None or examples is None or bgs.ndim != 3 or examples.ndim != 3:
            return None
        return Figure("The seeded background textures (top) and one test digit composited on each (bottom): "
                      "the digit stays the brightest thing in the image.", background_gallery(bgs, examples))

    def _maps(self, r: Result) -> Figure | None:
        images = r.arrays.get("background_inputs")
        pairs = {}
        for key in sorted(r.arrays):
            name = key.removeprefix("background_maps.")
            if key.startswith("background_maps.") and ".conv" in name:
                after = r.arrays.get("background_maps." + name.replace(".conv", ".relu"))
                if after is not None and after.shape == r.arrays[key].shape and r.arrays[key].ndim == 4:
                    pairs[name.split(".")[-1]] = (r.arrays[key], after)
        if images is None or images.ndim != 3 or not pairs or any(len(b) != len(images) for b, _ in pairs.values()):
            return None
        return Figure("Three background test inputs and every conv1 and conv2 map of the background-trained "
                      "network, before and after ReLU (each panel scaled to its own largest |value|): the texture "
                      "lights up before ReLU and is mostly what turns white after it, while the strokes survive.",
                      background_maps(images, pairs))

    def _similarity(self, r: Result) -> Figure | None:
        sim, layers = r.arrays.get("background_similarity_by_seed_layer"), r.metrics.get("background_layers")
        if sim is None or not isinstance(layers, list) or sim.ndim != 2 or sim.shape[1] != len(layers):
            return None
        return Figure("How close the background-trained network keeps a composite to its bare digit, layer by "
                      "layer (mean cosine over 500 test images): the closer to 1 with depth, the more of the "
                      "background the layers have dropped.", similarity_by_depth(layers, sim))

    def _clustering(self, r: Result) -> Figure | None:
        knn, ratio = r.arrays.get("knn_acc_by_seed_layer"), r.arrays.get("scatter_ratio_by_seed_layer")
        layers = r.metrics.get("layers")
        if knn is None or ratio is None or not isinstance(layers, list) or knn.shape[-1] != len(layers):
            return None
        parts = ["input" if n == "input" else "FE" if n.startswith("features.") else "DM" for n in layers]
        knn, ratio = np.atleast_2d(knn), np.atleast_2d(ratio)
        return Figure("k-NN accuracy (top) and between/within-class scatter ratio (bottom) of every layer of the "
                      "clean network on held-out test images, mean ± std over seeds: the classes separate as the "
                      "feature-extraction layers (blue) hand over to the decision layers (yellow).",
                      clustering_by_depth(layers, (knn.mean(0), _std(knn)), (ratio.mean(0), _std(ratio)), parts))


def _mean_std(r: Result, key: str) -> tuple[float, float] | None:
    """Mean and std of a per-seed figure (std 0 from a single value), None when not measured."""
    seeds = [v for v in r.by_seed.get(key) or [] if _number(v)]
    if seeds:
        return mean_std(seeds)
    value = r.metrics.get(key)
    return (float(value), 0.0) if _number(value) else None


def _mean(r: Result, key: str) -> float | None:
    stat = _mean_std(r, key)
    return None if stat is None else stat[0]


def _std(a: np.ndarray) -> np.ndarray:
    """Sample std over seeds (axis 0); 0 for a single seed."""
    return a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1:])


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


__all__ = ["RecosPage", "anchor_figure", "background_gallery", "background_maps", "clustering_by_depth",
           "correlation_histograms", "linear_templates", "polarity_bars", "similarity_by_depth"]
