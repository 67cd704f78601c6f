"""The atlas page of `reproduce zf` (Zeiler & Fergus, ECCV 2014), drawn from the saved Result
(`convscope/experiments/zf.py`): per network, one top-9 figure per conv layer (Fig. 2: input patches beside
their deconvnet projections), the occlusion panels (Fig. 7), the evolution grid (Fig. 4), and the settle epochs
and occlusion pointing beside their chance baseline.

Projections are drawn on the diverging scale, each cell scaled by its own largest |value| (red: the pattern that
drives the unit, blue: against); the NaN border of a patch cut by the image edge is drawn as the background.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Rectangle

from convscope.report.figures import DIVERGING, mosaic, png_bytes
from convscope.report.pages import ExperimentPage, Figure, Part, Row, register_page, short_name
from convscope.result import Result

SOURCE = "Zeiler & Fergus, ECCV 2014 (docs/REFERENCE.md §5)"
EDGE = np.array([0.93, 0.94, 0.96], np.float32)  # where a patch is cut by the image border
CHANGED = "#e8710a"  # frame of an evolution cell whose top image changed since the previous epoch


def _studies(r: Result) -> list[str]:
    return [k for k in r.metrics.get("studies", {}) if f"{k}.panel.images" in r.arrays]


def _study(r: Result, key: str) -> dict:
    return r.metrics.get("per_study", {}).get(key, {})


def _name(r: Result, key: str) -> str:
    return str(r.metrics.get("studies", {}).get(key, key))


def _short(layer: str) -> str:
    """A label: the last dotted part, or the whole name where that is a bare index ("stem.0")."""
    return short_name(layer, [layer])


def _part_key(key: str, layer: str, layers: list[str]) -> str:
    """The page of `layer`'s top-9 grids: the study and the layer's short name ("s0-conv2", "s0-stem.0")."""
    return f"{key}-{short_name(layer, layers)}"


def cells(a: np.ndarray, kind: str) -> np.ndarray:
    """(n, C, h, w) patches or projections as (n, h, w, 3) RGB; NaN (outside the image) as EDGE."""
    a = np.asarray(a, np.float32)
    nan = np.isnan(a).any(1)
    a = np.nan_to_num(a)
    if kind == "patch":
        lo = a.min(axis=(1, 2, 3), keepdims=True)
        hi = a.max(axis=(1, 2, 3), keepdims=True)
        v = np.clip(a, 0, 1) if lo.min() >= 0 and hi.max() <= 1 else (a - lo) / np.maximum(hi - lo, 1e-12)
        rgb = np.repeat(v[:, :1], 3, 1) if a.shape[1] != 3 else v
        rgb = rgb.transpose(0, 2, 3, 1)
    else:
        s = a.sum(1)  # (n, h, w): the channels' projections together
        peak = np.abs(s).reshape(len(s), -1).max(1)
        peak[peak == 0] = 1.0
        rgb = colormaps[DIVERGING](0.5 + 0.5 * s / peak[:, None, None])[..., :3]
    rgb = rgb.astype(np.float32)
    rgb[nan] = EDGE
    return rgb


def block(tiles: np.ndarray) -> np.ndarray:
    """(k, h, w, 3) tiles -> one square block of them, row-major, white where k falls short of the square."""
    side = math.ceil(math.sqrt(len(tiles)))
    full = np.ones((side * side, *tiles.shape[1:]), np.float32)
    full[:len(tiles)] = tiles
    return mosaic(full, side, gap=max(1, tiles.shape[1] // 10), fill=1.0)


def top9_figure(r: Result, key: str, layer: str) -> bytes:
    """Fig. 2 for one layer: per channel, a 3×3 block of input patches beside a 3×3 block of projections."""
    pre = f"{key}.top.{layer}"
    patch, proj, value = r.arrays[f"{pre}.patch"], r.arrays[f"{pre}.proj"], r.arrays[f"{pre}.value"]
    C = patch.shape[0]
    gap = max(1, patch.shape[3] // 10)
    blocks = []
    for c in range(C):
        left, right = block(cells(patch[c], "patch")), block(cells(proj[c], "proj"))
        spacer = np.ones((left.shape[0], gap * 2, 3), np.float32)
        blocks.append(np.concatenate([left, spacer, right], axis=1))
    bh, bw = blocks[0].shape[:2]
    scale = max(1.0, 260 / bw)  # figure pixels per array pixel: a pair of blocks is at least 260 pixels wide
    per_row = max(1, min(C, int(1300 // (bw * scale))))
    big_gap = gap * 6
    grid = mosaic(np.stack(blocks), per_row, gap=big_gap, fill=1.0)
    grid = np.concatenate([np.ones((big_gap, grid.shape[1], 3), np.float32), grid])  # room for the first labels
    fig = MplFigure(figsize=(grid.shape[1] * scale / 100 + 0.2, grid.shape[0] * scale / 100 + 0.2))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98))
    ax.imshow(grid, interpolation="nearest")
    for c in range(C):
        rr, cc = divmod(c, per_row)
        ax.text(cc * (bw + big_gap), (rr + 1) * (bh + big_gap) - bh - 0.8,
                f"channel {c}  (max {float(value[c, 0]):.3g})", fontsize=7, va="bottom", ha="left")
    ax.set_axis_off()
    return png_bytes(fig)


def panels_figure(r: Result, key: str) -> bytes:
    """Fig. 7: per test image, the image with the square, the strongest map's activity, its projection, the
    correct class's probability and the most probable label, at each position of the square."""
    pre = f"{key}.panel"
    images, labels = r.arrays[f"{pre}.images"], r.arrays[f"{pre}.labels"]
    classes = [str(c) for c in r.arrays.get(f"{key}.classes", [])]
    rows_, cols_ = r.arrays[f"{pre}.rows"], r.arrays[f"{pre}.cols"]
    window = int(r.provenance.get("config", {}).get("window", 7))
    n = len(images)
    fig = MplFigure(figsize=(13.0, 2.55 * n + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, 5))
    H, W = images.shape[2:]
    extent = (cols_[0] - 0.5, cols_[-1] + 0.5, rows_[-1] + 0.5, rows_[0] - 0.5)  # window top-left corners
    name = lambda k: classes[k] if 0 <= k < len(classes) else str(k)  # noqa: E731
    for i in range(n):
        img = images[i].transpose(1, 2, 0)
        shown = img[..., 0] if img.shape[2] == 1 else img
        ax = axes[i, 0]
        ax.imshow(shown, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.add_patch(Rectangle((W // 2 - window // 2 - 0.5, H // 2 - window // 2 - 0.5), window, window,
                               color="0.5", alpha=0.85))
        ax.set_title(f"(a) {name(int(labels[i]))}, p = {float(r.arrays[f'{pre}.base_probability'][i]):.3f}",
                     fontsize=8)
        feat = r.arrays[f"{pre}.feature"][i]
        im = axes[i, 1].imshow(feat, cmap="magma", extent=extent, interpolation="nearest")
        fig.colorbar(im, ax=axes[i, 1], shrink=0.8)
        axes[i, 1].set_title(f"(b) activity of map {int(r.arrays[f'{pre}.channel'][i])} "
                             f"(unoccluded {float(r.arrays[f'{pre}.base_feature'][i]):.3g})", fontsize=8)
        proj = r.arrays[f"{pre}.projection"][i].sum(0)
        peak = float(np.abs(proj).max()) or 1.0
        axes[i, 2].imshow(proj, cmap=DIVERGING, vmin=-peak, vmax=peak, interpolation="nearest")
        axes[i, 2].set_title("(c) its projection", fontsize=8)
        im = axes[i, 3].imshow(r.arrays[f"{pre}.probability"][i], cmap="viridis", vmin=0, vmax=1, extent=extent,
                               interpolation="nearest")
        fig.colorbar(im, ax=axes[i, 3], shrink=0.8)
        axes[i, 3].set_title("(d) p(correct class)", fontsize=8)
        lab = r.arrays[f"{pre}.label"][i]
        axes[i, 4].imshow(lab, cmap="tab10", vmin=-0.5, vmax=9.5, extent=extent, interpolation="nearest")
        for yy, y0 in enumerate(rows_):
            for xx, x0 in enumerate(cols_):
                if (yy + xx) % 2 == 0 or len(rows_) <= 8:
                    axes[i, 4].text(x0, y0, name(int(lab[yy, xx]))[:3], ha="center", va="center", fontsize=5,
                                    color="white")
        axes[i, 4].set_title("(e) most probable label", fontsize=8)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    return png_bytes(fig)


def evolution_figure(r: Result, key: str) -> bytes:
    """Fig. 4: rows = chosen channels of each layer, columns = epochs; each cell the projection of the channel's
    strongest training image at that epoch, framed in orange when that image changed since the epoch before."""
    layers = [n for n in _study(r, key).get("conv_layers", []) if f"{key}.evo.{n}.proj" in r.arrays]
    epochs = [int(e) for e in r.arrays[f"{key}.evo.epochs"]]
    E = len(epochs)
    cell = 44  # pixels per cell
    height = sum(len(r.arrays[f"{key}.evo.{n}.channels"]) for n in layers)
    width = max(3.6, 1.6 + E * cell / 100 * 1.1)  # wide enough for the titles when few epochs were kept
    fig = MplFigure(figsize=(width, 0.5 + height * cell / 100 * 1.1 + 0.25 * len(layers)), layout="constrained")
    axes = fig.subplots(len(layers), 1, squeeze=False,
                        height_ratios=[len(r.arrays[f"{key}.evo.{n}.channels"]) for n in layers])[:, 0]
    for ax, n in zip(axes, layers, strict=True):
        pre = f"{key}.evo.{n}"
        proj, index, channels = r.arrays[f"{pre}.proj"], r.arrays[f"{pre}.index"][:, :, 0], r.arrays[f"{pre}.channels"]
        c, _, _, h, w = proj.shape
        gap = max(1, h // 8)
        grid = mosaic(cells(proj.reshape(c * E, *proj.shape[2:]), "proj"), E, gap=gap, fill=1.0)
        ax.imshow(grid, interpolation="nearest")
        for ci in range(c):
            for ei in range(1, E):
                if index[ci, ei] != index[ci, ei - 1]:
                    ax.add_patch(Rectangle((ei * (w + gap) - 0.5, ci * (h + gap) - 0.5), w, h, fill=False,
                                           edgecolor=CHANGED, linewidth=1.6))
        ax.set_xticks([ei * (w + gap) + w / 2 for ei in range(E)], [str(e) for e in epochs], fontsize=7)
        ax.set_yticks([ci * (h + gap) + h / 2 for ci in range(c)], [str(int(ch)) for ch in channels], fontsize=7)
        settle = _study(r, key).get("feature_settle_epoch_by_layer") or r.metrics.get(
            "feature_settle_epoch_by_layer", {}).get(key, {})
        ax.set_ylabel(f"{_short(n)}\nchannel", fontsize=8)
        ax.set_title(f"{_short(n)}: settles at epoch {settle.get(n, float('nan')):g} (median)", fontsize=8,
                     loc="left")
        ax.tick_params(length=0)
        for s in ax.spines.values():
            s.set_visible(False)
    axes[-1].set_xlabel("epoch", fontsize=8)
    return png_bytes(fig)


def settle_figure(r: Result) -> bytes:
    """Left: each layer's settle epoch (median, and each followed channel's) by depth; right: the share of the final
    top-9 already in each epoch's top-9, mean over channels, one line per layer (for the first network; the
    second's in dashes)."""
    fig = MplFigure(figsize=(11.0, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    for si, key in enumerate(_studies(r)):
        layers = [n for n in _study(r, key).get("conv_layers", []) if f"{key}.evo.{n}.settle" in r.arrays]
        med = [float(np.median(r.arrays[f"{key}.evo.{n}.settle"])) for n in layers]
        depth = np.arange(1, len(layers) + 1)
        left.plot(depth, med, "-o", label=_name(r, key), color=f"C{si}")
        for d, n in zip(depth, layers, strict=True):
            pts = r.arrays[f"{key}.evo.{n}.settle"]
            left.scatter(np.full(len(pts), d) + 0.08 * (si - 0.5), pts, s=9, alpha=0.35, color=f"C{si}")
        epochs = r.arrays[f"{key}.evo.epochs"]
        cmap = colormaps["viridis"]
        for li, n in enumerate(layers):
            right.plot(epochs, r.arrays[f"{key}.evo.{n}.overlap"].mean(0), "--" if si else "-",
                       color=cmap(li / max(1, len(layers) - 1)), label=f"{_short(n)} ({_name(r, key).split()[0]})")
    left.set_xlabel("conv layer (depth)")
    left.set_ylabel("settle epoch")
    left.set_title("when the strongest image stops changing (median; dots: channels)", fontsize=9)
    left.legend(fontsize=7, frameon=False)
    left.grid(alpha=0.3)
    right.set_xlabel("epoch")
    right.set_ylabel("share of final top-9")
    right.set_ylim(-0.03, 1.03)
    right.set_title("the final top-9 images already among each epoch's top-9", fontsize=9)
    right.legend(fontsize=6, frameon=False, ncols=2)
    right.grid(alpha=0.3)
    return png_bytes(fig)


def pointing_figure(r: Result) -> bytes:
    """Occlusion pointing beside its chance baseline, for each network and evidence region."""
    bars = []  # (label, hit, chance)
    for key in _studies(r):
        for suffix, what in (("", "ink, grey square"), ("_projection", "top 10 % |projection|"),
                             ("_background", "ink, black square")):
            hit = r.metrics.get(f"occlusion_pointing{suffix}", {}).get(key)
            if hit is not None:
                bars.append((f"{_name(r, key)}\n{what}", hit, r.metrics[f"occlusion_pointing{suffix}_chance"][key]))
    fig = MplFigure(figsize=(min(12.0, 2.5 + 1.5 * len(bars)), 3.2), layout="constrained")
    ax = fig.add_subplot()
    labels, width = [label for label, _, _ in bars], 0.38
    for x, (_, hit, chance) in enumerate(bars):
        ax.bar(x - width / 2, hit, width, color="C0", label="largest drop inside" if x == 0 else None)
        ax.bar(x + width / 2, chance, width, color="0.7", label="chance" if x == 0 else None)
        ax.text(x - width / 2, hit + 0.01, f"{hit:.0%}", ha="center", fontsize=7)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("fraction of test images")
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3, axis="y")
    return png_bytes(fig)


def _depth_verdict(settle: dict[str, float]) -> tuple[str, str]:
    """Lower half of the layers against the upper half: do the lower ones settle earlier?"""
    v = list(settle.values())
    if len(v) < 2:
        return "one layer only", "info"
    half = len(v) // 2
    lo, hi = float(np.mean(v[:half])), float(np.mean(v[-half:]))
    if lo < hi:
        return f"reproduces: lower layers settle earlier (mean {lo:g} vs {hi:g})", "ok"
    if lo == hi:
        return f"no difference at epoch resolution (both {lo:g})", "info"
    return f"deviates: lower layers settle later (mean {lo:g} vs {hi:g})", "off"


def _pointing_verdict(hit: float, chance: float, n: int) -> tuple[str, str]:
    """Above chance by more than two binomial standard errors?"""
    se = math.sqrt(max(chance * (1 - chance), 1e-12) / max(n, 1))
    if hit > chance + 2 * se:
        return f"reproduces: {hit / max(chance, 1e-12):.1f}× chance", "ok"
    return "deviates: not above chance", "off"


@register_page("zf")
class ZFPage(ExperimentPage):
    def summary(self, r: Result) -> str:
        parts = []
        for key in _studies(r):
            settle = r.metrics.get("feature_settle_epoch_by_layer", {}).get(key, {})
            hit = r.metrics.get("occlusion_pointing", {}).get(key)
            chance = r.metrics.get("occlusion_pointing_chance", {}).get(key)
            if not settle or hit is None:
                continue
            order = ", ".join(f"{_short(n)} {v:g}" for n, v in settle.items())
            dark = r.metrics.get("occlusion_pointing_background", {}).get(key)
            dark_chance = r.metrics.get("occlusion_pointing_background_chance", {}).get(key)
            black = "" if dark is None else (f" ({dark:.0%} against {dark_chance:.0%} with a black square, the "
                                             "background's colour)")
            parts.append(f"In {_name(r, key)} the strongest training image of a channel stops changing at epoch "
                         f"{order} (median); occluding the position where the correct class's probability falls "
                         f"most hits the object in {hit:.0%} of test images, against {chance:.0%} by chance{black}.")
        diff = r.metrics.get("deconv_vs_gradient_max_abs_diff")
        if diff is not None:
            parts.append(f"The explicit deconvnet projection equals the deconvnet-rule gradient to {diff:.2g}.")
        return " ".join(parts)

    def headline(self, r: Result) -> list[Row]:
        rows = []
        for key in _studies(r):
            settle = r.metrics.get("feature_settle_epoch_by_layer", {}).get(key, {})
            if settle:
                verdict, status = _depth_verdict(settle)
                pub = r.published.get("feature_settle_epoch_by_layer")
                rows.append(Row(figure=f"settle epoch by layer, {_name(r, key)}",
                                measured=", ".join(f"{_short(n)} {v:g}" for n, v in settle.items()),
                                published=str(pub.value) if pub else "", source=pub.source if pub else SOURCE,
                                verdict=verdict, status=status))
            for suffix, square in (("", "grey"), ("_background", "black")):
                hit = r.metrics.get(f"occlusion_pointing{suffix}", {}).get(key)
                if hit is None:
                    continue
                chance = r.metrics[f"occlusion_pointing{suffix}_chance"][key]
                n = int(_study(r, key).get("pointing_images", 0))
                verdict, status = _pointing_verdict(hit, chance, n)
                pub = r.published.get("occlusion_pointing")
                rows.append(Row(figure=f"occlusion pointing ({square} square): largest drop on the object, "
                                       f"{_name(r, key)}",
                                measured=f"{hit:.1%} (chance {chance:.1%}, {n} images)",
                                published=str(pub.value) if pub else "", source=pub.source if pub else SOURCE,
                                verdict=verdict, status=status))
        if "deconv_vs_gradient_max_abs_diff" in r.published:
            rows.append(self.row(r, "deconv_vs_gradient_max_abs_diff", r.published["deconv_vs_gradient_max_abs_diff"]))
        return rows

    def figures(self, r: Result) -> list[Figure]:
        figs = []
        keys = _studies(r)
        if keys:
            figs.append(Figure("Occlusion pointing: the share of test images whose largest drop of the correct "
                               "class's probability is centred on the object (blue), beside the share of square "
                               "positions centred there (grey: a position drawn at random). With the paper's grey "
                               "square (the mean pixel) on a black background the square is a shape of its own; a "
                               "black square, the background's colour, hides without drawing.", pointing_figure(r)))
            figs.append(Figure("Settle epochs (left) and how much of the final top-9 each epoch already has "
                               "(right): the paper finds lower layers converge within a few epochs and upper "
                               "layers only later.", settle_figure(r)))
        for key in keys:
            name = _name(r, key)
            figs.append(Figure(f"{name}, Fig. 7: (a) a test image with the grey square drawn at the centre, "
                               "(b) the total activity of the occlusion layer's strongest map with the square at each "
                               "position, (c) that map's deconvnet projection, (d) the correct class's probability "
                               "and (e) the most probable label at each position. Where the square covers the "
                               "object, the probability falls and the label changes.", panels_figure(r, key)))
            figs.append(Figure(f"{name}, Fig. 4: for channels spread over each conv layer, the projection of the "
                               "strongest training image at the end of each epoch; an orange frame marks a change "
                               "of that image since the epoch before.", evolution_figure(r, key)))
            for n in _study(r, key).get("conv_layers", []):
                if f"{key}.top.{n}.patch" in r.arrays:
                    figs.append(Figure(
                        f"{name}, {n}, Fig. 2: for every channel, its 9 strongest training images, each as the input "
                        "patch under the activation's receptive field (left block, grey) beside the deconvnet "
                        "projection of that one activation (right block; red drives the unit). Pale cells are "
                        "outside the image.", top9_figure(r, key, n),
                        part=_part_key(key, n, _study(r, key).get("conv_layers", []))))
        return figs

    def parts(self, r: Result) -> dict[str, Part]:
        """One page per conv layer of each study: the top-9 grids of every channel (the paper's Fig. 2)."""
        return {_part_key(key, n, _study(r, key).get("conv_layers", [])): Part(
            f"{_name(r, key)}: {n}, top-9 training images of every channel",
            f"Each channel of {n} with the 9 training images that excite it most, found in one streaming pass over "
            "the training set: the input patch under the receptive field and the deconvnet projection of that "
            "activation, as Zeiler and Fergus's Fig. 2.")
            for key in _studies(r) for n in _study(r, key).get("conv_layers", [])
            if f"{key}.top.{n}.patch" in r.arrays}
