"""The atlas page of `reproduce parts`: what each part of a CNN does, drawn from the saved Result.

The sections follow the textbook convolution chapter (Qiu Xipeng, *Neural Networks and Deep Learning*,
ch. 5; docs/REFERENCE.md §1) and Kuo's RECOS article (§3); `convscope/experiments/parts.py` measures
them and saves numbers and arrays only. The drawing functions here take those arrays:

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
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import PercentFormatter

from convscope.report.figures import BACKGROUND, DIVERGING, mosaic, png_bytes
from convscope.report.pages import ExperimentPage, Figure, register_page
from convscope.result import Result


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
    fig = MplFigure(figsize=(1.9 * (k + 1), 1.9 * (n + 1) + 0.3), layout="constrained")
    axes = fig.subplots(n + 1, k + 1, squeeze=False)
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
            response = np.asarray(responses[i, j], np.float32)  # saved as float16
            if signed[j]:  # ±(99.5th percentile of |value|): a few strong edges would wash out the rest
                _signed(ax, response, float(np.percentile(np.abs(response), 99.5)) or None,
                        interpolation="antialiased")
            else:
                ax.imshow(response, cmap="gray", vmin=0, vmax=1)
            _bare(ax)
    fig.suptitle("red = positive, blue = negative, white = 0; each map on its own scale, saturating at the "
                 "99.5th percentile of |value|", fontsize=9)
    return png_bytes(fig)


def pooling_example(maps: Mapping[str, np.ndarray], sigma: float, size: int) -> bytes:
    """The clean and noisy edge maps of one image, then both max- and average-pooled (`pooled_examples`)."""
    fig = MplFigure(figsize=(11.5, 4.6), layout="constrained")
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
    fig = MplFigure(figsize=(6.0, 3.6), layout="constrained")
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
    fig = MplFigure(figsize=(3.4 * v, 3.5), layout="constrained")
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


def linear_collapse(rows: np.ndarray, outputs: np.ndarray, predicted: np.ndarray, max_diff: float,
                    acc: Mapping[str, float]) -> bytes:
    """The collapsed network: its 10 rows of A as images, its outputs against A·x + b, and accuracies.

    Args:
        rows: `(classes, H, W)`, each row of the one matrix A drawn as an image.
        outputs: network outputs `(n, classes)`.
        predicted: `A·x + b` for the same inputs.
        max_diff: the largest |output − (A·x + b)| measured (over the whole test set, in full precision).
        acc: accuracy by label, e.g. {"with ReLU": 0.99, "without": 0.92}.
    """
    fig = MplFigure(figsize=(12.0, 3.4), layout="constrained")
    left, mid, right = fig.subfigures(1, 3, width_ratios=[2.2, 1.3, 1.0])
    ncols = (len(rows) + 1) // 2
    img = mosaic(rows, ncols, gap=2, fill=np.nan)  # class k at row k // ncols, column k % ncols
    ax = left.add_subplot()
    peak = float(np.abs(rows).max()) or 1.0
    cmap = colormaps[DIVERGING].with_extremes(bad=BACKGROUND)
    im = ax.imshow(img, cmap=cmap, vmin=-peak, vmax=peak, interpolation="nearest")
    h, w = rows.shape[1:]
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
    ax.set_title(f"max |diff| = {max_diff:.1e}", fontsize=10)
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
    fig = MplFigure(figsize=(width, sum(heights)), layout="constrained")
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
    fig = MplFigure(figsize=(6.0, 0.32 * len(names) + 1.0), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(names))
    bars = ax.barh(y, [depths[n] for n in names], color="#2e6da4")
    ax.bar_label(bars, padding=8, fontsize=8)
    ax.set_xlim(0, max(depths.values()) * 1.12)
    pub = [(i, published[n]) for i, n in enumerate(names) if n in published]
    if pub:
        ax.plot([v for _, v in pub], [i for i, _ in pub], "x", color="#c0392b", markersize=9, mew=2,
                label="published or expected")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_yticks(y, names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("counted layers (conv + fully connected) on the longest path")
    ax.grid(alpha=0.3, axis="x")
    return png_bytes(fig)


# ---------------------------------------------------------------- the page


def _has(r: Result, arrays: Sequence[str] = (), metrics: Sequence[str] = ()) -> bool:
    """Whether the Result holds what a figure needs (a Result of an older run may lack some)."""
    return all(k in r.arrays for k in arrays) and all(r.metrics.get(k) is not None for k in metrics)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


@register_page("parts")
class PartsPage(ExperimentPage):
    labels = {
        "planted_filter_max_abs_diff": "planted Conv2d vs scipy correlate2d: max |diff|",
        "linear_collapse_max_abs_diff": "LeNet-5 without activations vs its one map A·x + b: max |diff|",
        "depth_vgg16": "VGG-16: counted layers",
        "depth_lenet5": "LeNet-5: counted layers",
    }

    def summary(self, r: Result) -> str:
        return " ".join(s for s in (self._theory(r), self._noise(r), self._normalisation(r)) if s)

    def _verdict(self, r: Result, key: str) -> bool | None:
        """Whether metric `key` lies within its published tolerance (None: no number or no tolerance)."""
        value, pub = r.metrics.get(key), r.published.get(key)
        if not isinstance(value, (int, float)) or pub is None or pub.tolerance is None:
            return None
        return abs(float(value) - float(pub.value)) <= pub.tolerance

    def _theory(self, r: Result) -> str:
        m = r.metrics
        parts = []
        if isinstance(m.get("planted_filter_max_abs_diff"), (int, float)):
            d, ok = m["planted_filter_max_abs_diff"], self._verdict(r, "planted_filter_max_abs_diff")
            agrees = {True: "matches", False: "differs from", None: "compares with"}[ok]
            parts.append(f"a Conv2d with the classic kernels planted {agrees} scipy's cross-correlation "
                         f"(max |diff| {d:.1e})")
        if _has(r, metrics=("linear_collapse_max_abs_diff", "acc_with_activation", "acc_without_activation")):
            e, ok = m["linear_collapse_max_abs_diff"], self._verdict(r, "linear_collapse_max_abs_diff")
            what = {True: "is one affine map", False: "is not one affine map within the tolerance",
                    None: "is compared with one affine map"}[ok]
            parts.append(f"LeNet-5 without activations {what} (max |diff| {e:.1e}) and classifies "
                         f"{_pct(m['acc_without_activation'])} of the test digits, against "
                         f"{_pct(m['acc_with_activation'])} with ReLU")
        text = "; ".join(parts)
        return text[:1].upper() + text[1:] + "." if text else ""

    def _noise(self, r: Result) -> str:
        m = r.metrics
        keys = ("test_noise_sigmas", "acc_maxpool_under_noise", "acc_avgpool_under_noise")
        if not _has(r, metrics=keys) or not m["test_noise_sigmas"]:
            return ""
        sigma, mx, av = m["test_noise_sigmas"][-1], m["acc_maxpool_under_noise"][-1], m["acc_avgpool_under_noise"][-1]
        better = "max" if mx > av else "average" if av > mx else "neither"
        text = (f"Under test noise σ = {sigma:g}, LeNet-5 with max pooling keeps {_pct(mx)} accuracy and with "
                f"average pooling {_pct(av)} ({better} pooling holds up better)")
        if _has(r, metrics=("acc_noise_trained_under_noise", "acc_clean_trained_under_noise")):
            noisy, clean = m["acc_noise_trained_under_noise"][-1], m["acc_clean_trained_under_noise"][-1]
            text += (f"; trained with noise and dropout it keeps {_pct(noisy)}, "
                     f"{'more' if noisy > clean else 'less' if noisy < clean else 'no more'} than the "
                     f"{_pct(clean)} of clean training")
        return text + "."

    def _normalisation(self, r: Result) -> str:
        m = r.metrics
        variants = [v for v in ("raw", "standardised", "batchnorm") if f"steps_to_loss_{v}" in m]
        if not variants or m.get("norm_target_loss") is None:
            return ""
        steps = len(r.arrays["norm_loss_curves"][0, 0]) if "norm_loss_curves" in r.arrays else None
        never = f"never within {steps} steps" if steps else "never"
        said = [f"{v} in {m[f'steps_to_loss_{v}']} steps" if m[f"steps_to_loss_{v}"] is not None else f"{v} {never}"
                for v in variants]
        return (f"With every pixel scaled by its own random factor, an MLP's training loss reaches "
                f"{m['norm_target_loss']:g}: " + ", ".join(said) + " (best learning rate of each).")

    def figures(self, r: Result) -> list[Figure]:
        drawn = (self._filters(r), self._edge_survival(r), self._pooling_example(r), self._pooling_mnist(r),
                 self._normalisation_figure(r), self._linear_collapse(r), self._noise_injection(r),
                 self._featurevis(r), self._depth(r))
        return [f for f in drawn if f is not None]

    def _filters(self, r: Result) -> Figure | None:
        if not _has(r, ("filter_images", "filter_responses", "kernels"), ("filter_names", "filter_signed")):
            return None
        a, m = r.arrays, r.metrics
        names = m.get("sample_images") or [f"image {i}" for i in range(len(a["filter_images"]))]
        png = filter_responses(a["filter_images"], a["filter_responses"], m["filter_names"], a["kernels"],
                               m["filter_signed"], names)
        return Figure("The kernels (top row) on photographs, each map computed by an nn.Conv2d with the kernel "
                      "planted (narrow convolution: no padded border). Sobel x marks vertical edges and Sobel y "
                      "horizontal ones, red where brightness rises to the right or downwards and blue where it "
                      "falls; the Gaussian blurs; the Laplacian outlines edges of every orientation in red-blue "
                      "pairs and is white on flat regions.", png)

    def _edge_survival(self, r: Result) -> Figure | None:
        if not _has(r, metrics=("edge_noise_sigmas", "edge_survival_max", "edge_survival_avg")):
            return None
        m, size = r.metrics, r.metrics.get("pool_size", 2)
        png = noise_curves(m["edge_noise_sigmas"], {"max pooling": m["edge_survival_max"],
                                                    "average pooling": m["edge_survival_avg"]},
                           "correlation with the clean pooled map")
        return Figure(f"Edge survival: correlation between the {size}×{size}-pooled ReLU(Sobel) edge map of a noisy "
                      f"photograph and that of the clean one, mean over {len(m.get('sample_images', [])) or 'the'} "
                      "photographs (1 = edges intact). The higher line is the pooling that keeps the edges better "
                      "as noise grows.", png)

    def _pooling_example(self, r: Result) -> Figure | None:
        keys = ("noisy", "clean_edges", "noisy_edges", "clean_max", "noisy_max", "clean_avg", "noisy_avg")
        if not _has(r, [f"pooling_example_{k}" for k in keys], ("pooling_example_sigma",)):
            return None
        m, size = r.metrics, r.metrics.get("pool_size", 2)
        sigma = m["pooling_example_sigma"]
        png = pooling_example({k: r.arrays[f"pooling_example_{k}"] for k in keys}, sigma, size)
        image = (m.get("sample_images") or ["a photograph"])[0]
        return Figure(f"{image}: the ReLU(Sobel) edge map and its {size}×{size} max- and average-pooled versions, "
                      f"clean (top) and with noise σ = {sigma:g} (bottom), each column on its clean map's colour "
                      "scale. Compare how much of the clean pooled pattern each pooling keeps in the bottom row.",
                      png)

    def _pooling_mnist(self, r: Result) -> Figure | None:
        if not _has(r, metrics=("test_noise_sigmas", "acc_maxpool_under_noise", "acc_avgpool_under_noise")):
            return None
        m = r.metrics
        png = noise_curves(m["test_noise_sigmas"], {"max pooling": m["acc_maxpool_under_noise"],
                                                    "average pooling": m["acc_avgpool_under_noise"]},
                           "test accuracy", percent=True)
        return Figure("Test accuracy of LeNet-5 with max or with average pooling, both trained on clean MNIST, as "
                      "Gaussian noise of growing σ is added to the test images (one noise draw for every model). "
                      "The gap between the lines is how much more robust one pooling is than the other.", png)

    def _normalisation_figure(self, r: Result) -> Figure | None:
        if not _has(r, ("norm_loss_curves",), ("norm_variants", "norm_lrs", "norm_target_loss")):
            return None
        m = r.metrics
        png = loss_curves(r.arrays["norm_loss_curves"], m["norm_variants"], m["norm_lrs"], m["norm_target_loss"])
        lo, hi = m.get("norm_scale_range") or ("a", "b")
        return Figure(f"Training loss (log scale) of a 784-{m.get('norm_hidden', 'h')}-10 MLP on MNIST with SGD "
                      "and momentum 0.9, one panel per input treatment, one line per learning rate: unscaled "
                      f"pixels; each pixel times a fixed random factor in [{lo:g}, {hi:g}] (raw); the same "
                      "standardised; raw with BatchNorm on the input and hidden layer. Dashed: the target loss "
                      f"{m['norm_target_loss']:g}. A treatment is better the more learning rates reach the dashed "
                      "line, and the sooner.", png)

    def _linear_collapse(self, r: Result) -> Figure | None:
        arrays = ("linear_collapse_A", "linear_collapse_outputs", "linear_collapse_predicted")
        keys = ("linear_collapse_max_abs_diff", "acc_with_activation", "acc_without_activation")
        if not _has(r, arrays, keys):
            return None
        a, m = r.arrays, r.metrics
        A = a["linear_collapse_A"]  # (classes, C, H, W); a colour input shows the mean over channels
        rows = A.mean(axis=1) if A.ndim == 4 else A
        png = linear_collapse(rows, a["linear_collapse_outputs"], a["linear_collapse_predicted"],
                              m["linear_collapse_max_abs_diff"],
                              {"with ReLU": m["acc_with_activation"], "without": m["acc_without_activation"]})
        return Figure("LeNet-5 without activations (average pooling), trained. Left: the rows of its one matrix A "
                      "as images, the pixel weights of each class score. Middle: its outputs against A·x + b on "
                      f"{len(a['linear_collapse_outputs'])} test images, on the diagonal if the network is one "
                      "affine map. Right: its test accuracy beside the same network with ReLU, the price of being "
                      "a linear classifier.", png)

    def _noise_injection(self, r: Result) -> Figure | None:
        keys = ("test_noise_sigmas", "acc_clean_trained_under_noise", "acc_noise_trained_under_noise")
        if not _has(r, metrics=keys):
            return None
        m = r.metrics
        sigma, p = m.get("train_noise_sigma"), m.get("dropout")
        known = sigma is not None and p is not None
        png = noise_curves(m["test_noise_sigmas"], {
            "clean training": m["acc_clean_trained_under_noise"],
            f"noise σ={sigma:g} + dropout {p:g}" if known else "noise + dropout": m["acc_noise_trained_under_noise"],
        }, "test accuracy", percent=True)
        how = f"noise σ = {sigma:g} and dropout {p:g}" if known else "noise and dropout"
        return Figure(f"LeNet-5 trained on clean MNIST against the same network trained with Gaussian input {how} "
                      "on the classifier, both tested as noise is added to the test images. Noise training should "
                      "trade a little clean accuracy (σ = 0) for a slower fall as σ grows.", png)

    def _featurevis(self, r: Result) -> Figure | None:
        layers = r.metrics.get("featurevis_layers") or []
        blocks: dict[str, np.ndarray] = {}
        for layer in layers:
            short = layer.rsplit(".", 1)[-1]
            for unit, what in (("channel", "mean of the channel"), ("neuron", "centre unit of the channel")):
                images = r.arrays.get(f"featurevis_{short}_{unit}")
                if images is not None:
                    blocks[f"{layer}, {what}: {len(images)} filters"] = images
        if not blocks:
            return None
        m = r.metrics
        how = [f"{m['featurevis_steps']:g} Adam steps"] if isinstance(m.get("featurevis_steps"), (int, float)) else []
        if isinstance(m.get("featurevis_fft"), bool):
            how.append("a Fourier-space image with a 1/f spectrum" if m["featurevis_fft"] else "free pixels")
        if m.get("featurevis_transforms") is True:
            how.append("Lucid's random pad, jitter, scale and rotation scaled to 28×28")
        elif isinstance(m.get("featurevis_jitter"), (int, float)):  # a result saved before optvis
            how.append(f"jitter {m['featurevis_jitter']:g} px")
        if isinstance(m.get("featurevis_l2"), (int, float)) and m["featurevis_l2"] > 0:
            how.append(f"L2 pull to grey {m['featurevis_l2']:g}")
        detail = " (" + ", ".join(how) + ")" if how else ""
        return Figure("The input each conv filter of the trained LeNet-5 (max pooling) responds to most: gradient "
                      f"ascent from a random image with the weights fixed{detail}, "
                      "all filters of a layer in one batch. On the mean of a conv1 map, which is linear in the "
                      "image, the best input is flat at the sign of the filter's sum, whatever the "
                      "parameterisation; on the centre unit it is the filter's pattern inside the receptive field "
                      "(grey outside it for free pixels, smooth low frequencies for a Fourier image).",
                      image_grid(blocks))

    def _depth(self, r: Result) -> Figure | None:
        depths: Any = r.metrics.get("depth_by_model")
        if not isinstance(depths, dict) or not depths:
            return None
        marks = {k.removeprefix("depth_"): int(p.value) for k, p in r.published.items()
                 if k.startswith("depth_") and k.removeprefix("depth_") in depths and isinstance(p.value, (int, float))}
        return Figure("Counted depth of every model in the zoo: conv and fully connected layers on the longest "
                      "path; pooling, normalisation and activations do not count. A red cross marks a published "
                      "or expected depth (" + ", ".join(f"{k}: {v}" for k, v in marks.items()) + "); a bar that "
                      "ends at its cross reproduces it.", depth_bars(depths, marks))


__all__ = ["PartsPage", "depth_bars", "filter_responses", "image_grid", "linear_collapse", "loss_curves",
           "noise_curves", "pooling_example"]
