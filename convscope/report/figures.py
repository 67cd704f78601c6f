"""Figures of the atlas: NumPy arrays in, PNG bytes out.

Compute and render apart (docs/DESIGN.md): nothing here sees a model or a tensor that needs a graph; every
function takes saved arrays and returns the bytes of a PNG that `html.py` writes under `atlas/img/`.
Matplotlib is used through `Figure` objects directly (no pyplot, no global state, Agg rendering), so
the functions leave no open figures behind.

Signed arrays (filters, conv outputs) are drawn with a diverging colormap centred at zero: red is
positive, blue negative, white zero. Scaling happens only here, for display; the saved numbers are
never changed. Many small maps are packed into one image ("mosaic", with NaN gutters drawn as the
background) instead of one axes per map, which keeps a 64-filter grid fast and crisp.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import PercentFormatter

DIVERGING = "RdBu_r"  # red = positive, blue = negative, white = 0
BACKGROUND = "#ffffff"
MAX_FILTERS = 64  # filters drawn per layer
MAX_MAPS = 16  # activation maps drawn per image
MAX_UNITS = 128  # 1×1 maps (one number per filter) drawn per image
_DPI = 100


def png_bytes(fig: Figure) -> bytes:
    """Render `fig` to PNG bytes (no timestamp or software tag, so output is reproducible)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, facecolor=BACKGROUND, metadata={"Software": None})
    return buf.getvalue()


def grid_columns(n: int) -> int:
    """Columns of a grid of `n` small maps: one row up to 8, then rows of 8 or 16."""
    if n <= 8:
        return max(n, 1)
    return 8 if n <= 16 else 16


def mosaic(planes: np.ndarray, ncols: int, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """Pack `planes` (n, h, w) or (n, h, w, 3) into one image, row-major, `gap` pixels of `fill` between.

    Returns (rows*(h+gap)-gap, ncols*(w+gap)-gap[, 3]).
    """
    n, h, w = planes.shape[:3]
    rows = math.ceil(n / ncols)
    out = np.full((rows * (h + gap) - gap, ncols * (w + gap) - gap, *planes.shape[3:]), fill, np.float32)
    for k in range(n):
        r, c = divmod(k, ncols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = planes[k]
    return out


def symmetric_scale(planes: np.ndarray) -> np.ndarray:
    """Scale each plane (first axis) by its own largest |value|, to [-1, 1]; all-zero planes stay 0."""
    flat = planes.reshape(len(planes), -1)
    peak = np.abs(flat).max(axis=1)
    peak[peak == 0] = 1.0
    return planes / peak.reshape(-1, *([1] * (planes.ndim - 1)))


def filter_planes(weight: np.ndarray) -> tuple[np.ndarray, str]:
    """One 2-D plane per filter of a conv weight (out, in, kh, kw), and a phrase saying what it is.

    One input channel: the filter itself. Several: the mean over input channels, which shows the
    spatial pattern the filter shares across its inputs.
    """
    if weight.ndim != 4:
        raise ValueError(f"a conv weight has shape (out, in, kh, kw), got {weight.shape}")
    if weight.shape[1] == 1:
        return weight[:, 0], "the filter's weights"
    return weight.mean(axis=1), f"the mean of each filter over its {weight.shape[1]} input channels"


def _grid_figure(
    n: int, ncols: int, cell: tuple[int, int], gap: int, cell_px: int, colorbar: bool
) -> tuple[Figure, Axes, Axes | None]:
    """Axes for a mosaic of `n` maps of size `cell`, laid out by hand (fast, unlike constrained layout).

    Indices are tick labels (top: column, left: first index of the row); a thin frame around each
    map keeps one that is all white (near zero) visible against the white gutter. Returns the
    figure, the mosaic's axes, and the colour bar's axes when `colorbar`.
    """
    h, w = cell
    rows = math.ceil(n / ncols)
    unit = cell_px / max(h, w) / _DPI  # inches per mosaic pixel
    grid_w, grid_h = (ncols * (w + gap) - gap) * unit, (rows * (h + gap) - gap) * unit
    left, top, bottom = 0.4, 0.3, 0.12
    right = 1.05 if colorbar else 0.15
    body_h = max(grid_h, 0.9 if colorbar else 0.0)  # a colour bar needs room for three labels
    fig_w, fig_h = left + grid_w + right, top + body_h + bottom
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((left / fig_w, (fig_h - top - grid_h) / fig_h, grid_w / fig_w, grid_h / fig_h))
    ax.set_xticks([c * (w + gap) + (w - 1) / 2 for c in range(ncols)], [str(c) for c in range(ncols)])
    ax.set_yticks([r * (h + gap) + (h - 1) / 2 for r in range(rows)], [str(r * ncols) for r in range(rows)])
    ax.tick_params(length=0, labelsize=8, labeltop=True, labelbottom=False)
    for side in ax.spines.values():
        side.set_visible(False)
    for k in range(n):
        r, c = divmod(k, ncols)
        xy = (c * (w + gap) - 0.5, r * (h + gap) - 0.5)
        ax.add_patch(Rectangle(xy, w, h, fill=False, edgecolor="#9aa0a6", linewidth=0.6))
    cax = None
    if colorbar:
        cax = fig.add_axes(((left + grid_w + 0.15) / fig_w, bottom / fig_h, 0.14 / fig_w, body_h / fig_h))
    return fig, ax, cax


def cell_size(ncols: int, width_px: int = 880, lo: int = 48, hi: int = 104) -> int:
    """Pixels per map so that a grid of `ncols` columns is about `width_px` wide, within [lo, hi]."""
    return int(min(hi, max(lo, width_px / ncols)))


def filter_grid(weight: np.ndarray, max_filters: int = MAX_FILTERS, cell_px: int | None = None) -> bytes:
    """The filters of a conv layer as a grid, each scaled by its own max |w|, diverging colours.

    Filter k sits at row k // ncols, column k % ncols; the left labels give the index of a row's
    first filter, the top labels the column, so filter k = left label + top label.
    """
    planes, _ = filter_planes(np.asarray(weight, np.float32)[:max_filters])
    planes = symmetric_scale(planes)
    ncols = grid_columns(len(planes))
    gap = 1
    img = mosaic(planes, ncols, gap)
    fig, ax, cax = _grid_figure(len(planes), ncols, planes.shape[1:], gap, cell_px or cell_size(ncols), True)
    cmap = colormaps[DIVERGING].with_extremes(bad=BACKGROUND)
    im = ax.imshow(img, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    bar = fig.colorbar(im, cax=cax)
    bar.set_ticks([-1, 0, 1], labels=["−max|w|", "0", "+max|w|"], fontsize=8)
    return png_bytes(fig)


def rgb_filter_grid(weight: np.ndarray, max_filters: int = MAX_FILTERS, cell_px: int | None = None) -> bytes:
    """Filters with 3 input channels drawn in colour: channel c becomes R, G or B; mid-grey is 0.

    Each filter is scaled by its own max |w|, then mapped from [-1, 1] to [0, 1].
    """
    w = np.asarray(weight, np.float32)[:max_filters]
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(f"an RGB filter grid needs weights (out, 3, kh, kw), got {w.shape}")
    planes = 0.5 + 0.5 * symmetric_scale(w.transpose(0, 2, 3, 1))  # (out, kh, kw, 3)
    ncols = grid_columns(len(planes))
    gap = 1
    img = mosaic(planes, ncols, gap, fill=1.0)
    fig, ax, _ = _grid_figure(len(planes), ncols, planes.shape[1:3], gap, cell_px or cell_size(ncols), False)
    ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
    return png_bytes(fig)


def maps_shown(channels: int, h: int, w: int) -> int:
    """How many of a layer's `channels` maps of size h × w `activation_maps` draws."""
    return min(channels, MAX_UNITS if h * w == 1 else MAX_MAPS)


def activation_maps(act: np.ndarray, cell_px: int | None = None) -> bytes:
    """The feature maps (out, h, w) of one image at one layer, on one colour scale centred at zero.

    All maps share the scale ±max |a| over the maps shown, so brighter means a stronger response
    than in the other maps of the same image; the colour bar gives the raw values. Maps of 1 × 1
    (one number per filter) are packed without gutters, up to MAX_UNITS of them.
    """
    a = np.asarray(act, np.float32)
    if a.ndim != 3:
        raise ValueError(f"activations of one image have shape (channels, h, w), got {a.shape}")
    a = a[: maps_shown(*a.shape)]
    peak = float(np.abs(a).max()) or 1.0
    ncols = grid_columns(len(a))
    gap = 0 if a.shape[1] * a.shape[2] == 1 else max(1, round(a.shape[1] / 10))
    img = mosaic(a, ncols, gap)
    cell_px = cell_px or cell_size(ncols, 640, 40 if gap == 0 else 48, 88)
    fig, ax, cax = _grid_figure(len(a), ncols, a.shape[1:], gap, cell_px, True)
    cmap = colormaps[DIVERGING].with_extremes(bad=BACKGROUND)
    im = ax.imshow(img, cmap=cmap, vmin=-peak, vmax=peak, interpolation="nearest")
    bar = fig.colorbar(im, cax=cax)
    bar.ax.tick_params(labelsize=8)
    return png_bytes(fig)


def input_image(image: np.ndarray) -> bytes:
    """A (C, H, W) image in [0, 1] at its own resolution: grey for 1 channel, RGB for 3.

    Integer images are read as 0..255. Other channel counts show the first channel. The page
    scales it up with pixelated rendering.
    """
    x = np.asarray(image)
    x = x / 255.0 if np.issubdtype(x.dtype, np.integer) else x  # uint8 images, though [0, 1] is the contract
    x = np.clip(np.nan_to_num(x.astype(np.float32)), 0.0, 1.0)
    if x.ndim != 3:
        raise ValueError(f"an image has shape (C, H, W), got {x.shape}")
    if x.shape[0] == 3:
        rgb = x.transpose(1, 2, 0)  # (H, W, 3)
    else:
        rgb = np.repeat(x[0][..., None], 3, axis=2)
    from matplotlib.image import imsave  # writes a bare image, no axes, pixel for pixel

    buf = io.BytesIO()
    imsave(buf, rgb, format="png", metadata={"Software": None})
    return buf.getvalue()


def training_curves(rows: Sequence[dict]) -> bytes:
    """Loss and accuracy by epoch, train vs test, from metrics.jsonl rows (missing series skipped)."""
    fig = Figure(figsize=(9.6, 3.6), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    for ax, what in ((loss_ax, "loss"), (acc_ax, "acc")):
        for split, style in (("train", "-o"), ("test", "-s")):
            pts = [(e, r[f"{split}_{what}"]) for e, r in zip(epochs, rows) if _is_number(r.get(f"{split}_{what}"))]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, style, markersize=3.5, linewidth=1.6, label=split)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(frameon=False)
        else:
            ax.text(0.5, 0.5, f"no {what} recorded", ha="center", va="center", transform=ax.transAxes)
    loss_ax.set_title("loss", fontsize=11)
    acc_ax.set_title("accuracy", fontsize=11)
    accs = [y for line in acc_ax.lines for y in line.get_ydata()]
    if accs and max(accs) <= 1.0:  # fractions: show as percent
        acc_ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    if len(set(epochs)) <= 12:
        for ax in (loss_ax, acc_ax):
            ax.set_xticks(sorted(set(epochs)))
    return png_bytes(fig)


def curves_by_seed(curves: np.ndarray, seeds: Sequence[int], ylabel: str, reference: float | None = None,
                   reference_label: str = "published") -> bytes:
    """One line per seed (rows of `curves`, by epoch), with an optional published value as a dashed line."""
    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = fig.add_subplot()
    epochs = np.arange(1, curves.shape[1] + 1)
    for seed, row in zip(seeds, curves):
        ax.plot(epochs, row, "-o", markersize=3.5, linewidth=1.4, label=f"seed {seed}")
    if reference is not None:
        ax.axhline(reference, color="0.3", linestyle="--", linewidth=1.2, label=reference_label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_xticks(epochs)
    if np.nanmax(curves) <= 1.0:
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return png_bytes(fig)


def series_plot(values: Sequence[float], label: str) -> bytes:
    """A list-valued metric as a line over its index."""
    y = np.asarray(values, np.float64)
    fig = Figure(figsize=(6.0, 2.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(np.arange(len(y)), y, "-", marker="o" if len(y) <= 60 else None, markersize=3, linewidth=1.4)
    ax.set_xlabel("index")
    ax.set_ylabel(label, fontsize=9)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def heatmap(values: np.ndarray, label: str) -> bytes:
    """A 2-D metric (rows × columns) as a heat map; diverging when it has both signs."""
    a = np.asarray(values, np.float64)
    fig = Figure(figsize=(5.0, max(2.4, min(4.2, 4.2 * a.shape[0] / max(a.shape[1], 1)))), layout="constrained")
    ax = fig.add_subplot()
    if a.min() < 0 < a.max():
        peak = float(np.abs(a).max())
        im = ax.imshow(a, cmap=DIVERGING, vmin=-peak, vmax=peak, aspect="auto", interpolation="nearest")
    else:
        im = ax.imshow(a, cmap="viridis", aspect="auto", interpolation="nearest")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    fig.colorbar(im, ax=ax, label=label)
    return png_bytes(fig)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def explanation_panel(image: np.ndarray, attribution: np.ndarray, title: str, cam: bool = False) -> bytes:
    """The input (C, H, W), the map (H, W) on the diverging scale (Grad-CAM's on a sequential one), and the map
    over the input: what `convscope explain` writes. The map is scaled by its own largest |value| here only."""
    img = image.transpose(1, 2, 0)
    grey = img[..., 0] if img.shape[2] == 1 else img.mean(2)
    shown = np.clip(img[..., 0], 0, 1) if img.shape[2] == 1 else np.clip(img, 0, 1)
    peak = float(np.abs(attribution).max()) or 1.0
    fig = Figure(figsize=(9.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
    axes[0].set_title("input", fontsize=9)
    style = {"cmap": "inferno", "vmin": 0, "vmax": peak} if cam else {"cmap": DIVERGING, "vmin": -peak, "vmax": peak}
    im = axes[1].imshow(attribution, interpolation="nearest", **style)
    axes[1].set_title("map (red: for the target, blue: against)" if not cam else "map", fontsize=9)
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    axes[2].imshow(grey, cmap="gray", interpolation="nearest")
    axes[2].imshow(attribution, alpha=0.55, interpolation="bilinear", **style)
    axes[2].set_title("overlay", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return png_bytes(fig)
