"""The atlas page of `reproduce explain`: every method's maps, their deletion/insertion curves, and the
randomisation sanity check, drawn from the saved Result (`convscope/experiments/explain.py`).

Maps are signed and drawn on the diverging scale, each scaled by its own largest |value| (red: evidence for
the explained class, blue: against). Grad-CAM is non-negative by construction.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure as MplFigure

from convscope.report.figures import DIVERGING, mosaic, png_bytes
from convscope.report.pages import ExperimentPage, Figure, Row, register_page
from convscope.result import Result

# Adebayo et al. (2018): these stay close to their original maps under cascading randomisation; the rest fall.
INSENSITIVE = ("guided_backprop", "guided_gradcam", "deconvnet")
THRESHOLD = 0.5  # rank correlation of |map| after every layer is re-drawn: above it, "the map barely changed"
SOURCE = "Adebayo et al., NeurIPS 2018 (docs/REFERENCE.md §9)"


def _methods(r: Result) -> list[str]:
    return [m for m in r.metrics.get("methods", []) if f"maps.{m}" in r.arrays]


def _label(r: Result, k: int) -> str:
    classes = [str(c) for c in r.arrays.get("classes", [])]
    return classes[k] if 0 <= k < len(classes) else str(k)


def map_grid(r: Result) -> bytes:
    """Rows: the shown test images; columns: the input, then each method's map. The cells are composed into
    one RGB mosaic (one axes, not one per cell: a dozen images × ten methods would otherwise take seconds)."""
    methods, images = _methods(r), r.arrays["images"]
    n, cols = len(images), len(methods) + 1
    h, w = images.shape[2:]
    cells = np.ones((n, cols, h, w, 3), np.float32)
    cmap = colormaps[DIVERGING]
    for i in range(n):
        img = images[i].transpose(1, 2, 0)
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        cells[i, 0] = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[..., :3]
        for j, m in enumerate(methods, start=1):
            a = r.arrays[f"maps.{m}"][i]
            peak = float(np.abs(a).max()) or 1.0
            cells[i, j] = cmap(0.5 + 0.5 * a / peak)[..., :3]  # each map on its own ±peak scale
    gap = max(1, h // 14)
    grid = mosaic(cells.reshape(n * cols, h, w, 3), cols, gap=gap, fill=1.0)
    fig = MplFigure(figsize=(0.9 * cols + 0.9, 0.9 * n + 0.6), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([(w + gap) * j + w / 2 for j in range(cols)], ["input", *(m.replace("_", " ") for m in methods)],
                  rotation=35, ha="left", fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([(h + gap) * i + h / 2 for i in range(n)])
    labels = []
    for i in range(n):
        y, p = int(r.arrays["labels"][i]), int(r.arrays["preds"][i])
        labels.append(f"{_label(r, y)} → {_label(r, p)}")
    ax.set_yticklabels(labels, fontsize=7)
    for tick, i in zip(ax.get_yticklabels(), range(n), strict=True):
        tick.set_color("#1a7f37" if r.arrays["labels"][i] == r.arrays["preds"][i] else "#c62828")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return png_bytes(fig)


def quality_curves(r: Result) -> bytes:
    """Mean deletion and insertion curves of every method."""
    fig = MplFigure(figsize=(9.6, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    x = r.arrays["fraction"]
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        for m in _methods(r):
            auc = r.metrics.get(f"{kind}_auc", {}).get(m, float("nan"))
            ax.plot(x, r.arrays[f"{kind}.{m}"], linewidth=1.3, label=f"{m.replace('_', ' ')} ({auc:.3f})")
        ax.set_xlabel(f"fraction of pixels {'removed' if kind == 'deletion' else 'inserted'}")
        ax.set_ylabel("probability of the explained class")
        ax.set_title(f"{kind} ({'lower' if kind == 'deletion' else 'higher'} area is better)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False)
    return png_bytes(fig)


def sanity_curves(r: Result) -> bytes:
    """Rank correlation of each method's |map| with its original as the layers are re-drawn from the top."""
    layers = list(r.metrics.get("sanity_layers", []))
    fig = MplFigure(figsize=(7.6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    steps = np.arange(1, len(layers) + 1)
    for m in _methods(r):
        style = "--" if m in INSENSITIVE else "-"
        ax.plot(steps, r.arrays[f"sanity_abs.{m}"], style, marker="o", markersize=3, label=m.replace("_", " "))
    ax.axhline(THRESHOLD, color="0.5", linewidth=0.8, linestyle=":")
    ax.set_xticks(steps, [f"+{name.split('.')[-1]}" for name in layers], rotation=45, fontsize=7)
    ax.set_ylabel("Spearman ρ of |map| with the original")
    ax.set_xlabel("layers re-drawn so far (from the output down)")
    ax.set_ylim(-0.2, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, frameon=False, ncols=2)
    return png_bytes(fig)


@register_page("explain")
class ExplainPage(ExperimentPage):
    def summary(self, r: Result) -> str:
        final = r.metrics.get("sanity_spearman_abs_all_layers", {})
        dele, ins = r.metrics.get("deletion_auc", {}), r.metrics.get("insertion_auc", {})
        if not final or not dele:
            return ""
        stay = sorted(m for m, v in final.items() if v >= THRESHOLD)
        fall = sorted(m for m, v in final.items() if v < THRESHOLD)
        best_del = min(dele, key=dele.get)
        best_ins = max(ins, key=ins.get)
        words = lambda ms: ", ".join(m.replace("_", " ") for m in ms) or "none"  # noqa: E731
        return (f"After every layer of {r.metrics.get('model', 'the model')} is re-drawn at random, the maps of "
                f"{words(stay)} still rank the pixels much as before (Spearman ρ ≥ {THRESHOLD}), so they show "
                f"the image more than what the model learned; those of {words(fall)} change, as a faithful "
                f"explanation must. Removing pixels in the order of {best_del.replace('_', ' ')} lowers the class "
                f"probability fastest (deletion area {dele[best_del]:.3f}), and inserting them in the order of "
                f"{best_ins.replace('_', ' ')} raises it fastest (insertion area {ins[best_ins]:.3f}).")

    def headline(self, r: Result) -> list[Row]:
        final = r.metrics.get("sanity_spearman_abs_all_layers", {})
        rows = []
        for m, v in final.items():
            expected_high = m in INSENSITIVE
            ok = (v >= THRESHOLD) == expected_high
            rows.append(Row(
                figure=f"sanity check: ρ of |map| after randomising every layer, {m.replace('_', ' ')}",
                measured=f"{v:.3f}", published="barely changes (ρ high)" if expected_high else "changes (ρ low)",
                source=SOURCE + f" (threshold ρ = {THRESHOLD} is ours; the paper shows curves)",
                verdict=("reproduces" if ok else "deviates") + (f": ρ {'≥' if v >= THRESHOLD else '<'} {THRESHOLD}"),
                status="ok" if ok else "off"))
        for kind, better in (("deletion", min), ("insertion", max)):
            aucs = r.metrics.get(f"{kind}_auc", {})
            if aucs:
                order = sorted(aucs, key=aucs.get, reverse=better is max)
                rows.append(Row(figure=f"{kind} area, best first", measured=", ".join(
                    f"{m.replace('_', ' ')} {aucs[m]:.3f}" for m in order[:4]) + ", …",
                    published=r.published[f"{kind}_auc"].value if f"{kind}_auc" in r.published else "",
                    source=r.published[f"{kind}_auc"].source if f"{kind}_auc" in r.published else "",
                    verdict="another data set and model: compare the ordering", status="info"))
        return rows

    def figures(self, r: Result) -> list[Figure]:
        if "images" not in r.arrays or not _methods(r):
            return []
        return [
            Figure("Every method's map of a dozen test images (rows: true → predicted class, red when wrong), each "
                   "explaining the predicted class; red pixels raise its score, blue lower it. Guided "
                   "backpropagation and the deconvnet draw edges whatever the class; Grad-CAM marks a region.",
                   map_grid(r)),
            Figure("Deletion (left) and insertion (right): the class probability as pixels are removed or inserted "
                   "in each method's order, mean over the test images; the area is in the legend.",
                   quality_curves(r)),
            Figure("The sanity check: rank correlation of each method's |map| with its original as layers are "
                   "re-drawn from the output down. Dashed: the methods Adebayo et al. found barely change; a "
                   "method that ignores the model would stay at 1.", sanity_curves(r)),
        ]
