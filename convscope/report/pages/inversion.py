"""The atlas page of `reproduce inversion` (Mahendran and Vedaldi, CVPR 2015), drawn from the saved Result
(`convscope/experiments/inversion.py`): per network, the reconstructions of a few test images from every layer, by
depth (trained and random weights), the normalised reconstruction error and pixel MSE by layer, trained against
random, and several test images reconstructed from one deep layer.

Images are drawn in grey on the pixel range [0, 1] of the training images, clipped: a reconstruction is not bound
to that range (the α-norm only discourages leaving it).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure as MplFigure

from convscope.report.figures import png_bytes
from convscope.report.pages import ExperimentPage, Figure, Row, register_page
from convscope.result import Result

SOURCE = "Mahendran & Vedaldi, CVPR 2015 (docs/REFERENCE.md §6)"


def _studies(r: Result) -> list[str]:
    return [k for k in r.metrics.get("studies", {}) if f"{k}.trained.images" in r.arrays]


def _study(r: Result, key: str) -> dict:
    return r.metrics.get("per_study", {}).get(key, {})


def _short(layer: str) -> str:
    return layer.split(".")[-1]


def _grey(img: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] as something imshow draws: (H, W) for one channel, (H, W, 3) for three."""
    img = np.clip(np.asarray(img, np.float32), 0, 1)
    return img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)


def _show(ax, img: np.ndarray, title: str) -> None:  # noqa: ANN001 (a matplotlib Axes)
    ax.imshow(_grey(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=7)
    ax.set_axis_off()


def depth_figure(r: Result, key: str, tag: str) -> bytes:
    """One row per image: the original, then its reconstruction from each layer in forward order."""
    images, originals = r.arrays[f"{key}.{tag}.images"], r.arrays[f"{key}.originals"]  # (L, B, C, H, W), (B, ...)
    errors = r.arrays[f"{key}.{tag}.errors"]  # (L, B)
    layers = _study(r, key).get("layers") or [f"layer {i}" for i in range(len(images))]
    L, B = images.shape[:2]
    fig = MplFigure(figsize=(1.05 * (L + 1) + 0.2, 1.25 * B + 0.3), layout="constrained")
    axes = np.atleast_2d(fig.subplots(B, L + 1))
    for b in range(B):
        _show(axes[b, 0], originals[b], "original")
        for i in range(L):
            _show(axes[b, i + 1], images[i, b], f"{_short(layers[i])}\nerr {float(errors[i, b]):.2f}")
    return png_bytes(fig)


def error_figure(r: Result, key: str) -> bytes:
    """The normalised reconstruction error (left) and pixel MSE (right) by layer, trained against random."""
    st = _study(r, key)
    layers = st.get("layers", [])
    err = st.get("inversion_error_by_layer", {})
    fig = MplFigure(figsize=(11.0, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    xs = np.arange(len(layers))
    for tag, style in (("trained", "-o"), ("random", "--s")):
        if tag in err:
            left.plot(xs, [err[tag][n] for n in layers], style, markersize=4, label=f"{tag} weights")
    left.set_ylabel("‖Φ(x*) − Φ₀‖ / ‖Φ₀‖", fontsize=9)
    left.legend(fontsize=8)
    mse = st.get("pixel_mse_by_layer", {})
    right.plot(xs, [mse.get(n, np.nan) for n in layers], "-o", markersize=4, color="C2")
    right.set_ylabel("pixel MSE of x* (trained)", fontsize=9)
    for ax in (left, right):
        ax.set_xticks(xs, [_short(n) for n in layers], rotation=45, fontsize=7)
        ax.grid(alpha=0.3)
    return png_bytes(fig)


def deep_figure(r: Result, key: str) -> bytes:
    """Several test images (top) and their reconstructions from the deep layer (bottom)."""
    originals, images = r.arrays[f"{key}.deep.originals"], r.arrays[f"{key}.deep.images"]
    errors, labels = r.arrays[f"{key}.deep.errors"], r.arrays[f"{key}.deep.labels"]
    classes = [str(c) for c in r.arrays.get(f"{key}.classes", [])]
    n = len(images)
    fig = MplFigure(figsize=(1.2 * n + 0.2, 2.8), layout="constrained")
    axes = np.atleast_2d(fig.subplots(2, n)).reshape(2, n)
    for b in range(n):
        k = int(labels[b])
        _show(axes[0, b], originals[b], classes[k] if 0 <= k < len(classes) else str(k))
        _show(axes[1, b], images[b], f"err {float(errors[b]):.2f}")
    return png_bytes(fig)


def _cell(err: dict, tag: str) -> str:
    return ", ".join(f"{_short(n)} {v:.2f}" for n, v in err.get(tag, {}).items())


@register_page("inversion")
class InversionPage(ExperimentPage):
    def summary(self, r: Result) -> str:
        parts = []
        for key in _studies(r):
            st = _study(r, key)
            err, mse, layers = st.get("inversion_error_by_layer", {}), st.get("pixel_mse_by_layer", {}), st["layers"]
            if not layers or "trained" not in err:
                continue
            first, last = layers[0], layers[-1]
            parts.append(
                f"In {st.get('network', key)} the reconstruction from {_short(first)} is {mse[first]:.3g} from the "
                f"original in pixel MSE and that from {_short(last)} {mse[last]:.3g}"
                + (" (deeper is blurrier and further from the image, as the paper finds)"
                   if r.metrics.get("pixel_mse_rises_with_depth", {}).get(key) else
                   " (deeper is not further from the image here, unlike the paper)")
                + f"; the codes themselves are matched to {min(err['trained'].values()):.0%}–"
                  f"{max(err['trained'].values()):.0%} relative error (trained weights), against "
                  f"{min(err['random'].values()):.0%}–{max(err['random'].values()):.0%} for random weights.")
        return " ".join(parts)

    def headline(self, r: Result) -> list[Row]:
        rows = []
        pub = r.published.get("pixel_mse_rises_with_depth")
        for key in _studies(r):
            st = _study(r, key)
            mse = st.get("pixel_mse_by_layer", {})
            rises = r.metrics.get("pixel_mse_rises_with_depth", {}).get(key)
            if mse and pub is not None:
                rows.append(Row(figure=f"pixel MSE of the reconstruction by layer, {st.get('network', key)}",
                                measured=", ".join(f"{_short(n)} {v:.3g}" for n, v in mse.items()),
                                published=str(pub.value), source=pub.source, kind=pub.kind,
                                verdict="reproduces: deeper layers reconstruct further from the image" if rises
                                else "deviates: deeper layers are not further from the image",
                                status="ok" if rises else "off"))
            err = st.get("inversion_error_by_layer", {})
            if err:
                rows.append(Row(figure=f"normalised reconstruction error by layer, {st.get('network', key)}",
                                measured=f"trained: {_cell(err, 'trained')}; random: {_cell(err, 'random')}",
                                published="reported per layer for ImageNet networks; no figure for these networks",
                                source=SOURCE, verdict="compare the figure", status="info"))
        return rows

    def figures(self, r: Result) -> list[Figure]:
        figs = []
        for key in _studies(r):
            st = _study(r, key)
            name = st.get("network", key)
            figs.append(Figure(f"{name}, trained: each test image (left) reconstructed from each layer, shallow to "
                               "deep, with the normalised error of its code. Deeper reconstructions are blurrier and "
                               "keep the parts of the image the network uses to tell the classes apart.",
                               depth_figure(r, key, "trained")))
            figs.append(Figure(f"{name}, the same at random initial weights: a random code keeps pixels too, but "
                               "nothing in it favours the object's discriminative parts.",
                               depth_figure(r, key, "random")))
            figs.append(Figure(f"{name}: the normalised reconstruction error of the code (left) for trained and "
                               "random weights, and how far the trained network's reconstruction is from the image "
                               "in pixels (right), by layer.", error_figure(r, key)))
            if f"{key}.deep.images" in r.arrays:
                figs.append(Figure(f"{name}: several test images (top) reconstructed from "
                                   f"{st.get('deep_layer', 'a deep layer')} (bottom).", deep_figure(r, key)))
        return figs


__all__ = ["InversionPage", "deep_figure", "depth_figure", "error_figure"]
