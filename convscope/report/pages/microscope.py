"""The atlas pages of `reproduce microscope`: a tile per channel, a page per layer and per channel.

The experiment's page lists the conv layers; a layer's page shows every channel as one tile (its feature
visualisation beside its top-9 input patches), and a click on a tile opens the channel's page with the larger
views: the feature visualisation, the filter weights, the top-9 input patches and their deconvnet projections,
the pairing partner and the mean activation. The pictures are composed from the saved arrays as plain images
(no plotting), so even a layer of hundreds of channels draws in seconds; the words go into the captions.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib import colormaps
from matplotlib.image import imsave

from convscope.report.figures import DIVERGING, mosaic
from convscope.report.pages import ExperimentPage, Figure, Part, register_page
from convscope.report.pages.zf import block, cells
from convscope.result import Result

WHITE = 1.0
TILE = ("Each tile: the channel's filter (red positive, blue negative), its feature visualisation (the image that "
        "maximises its centre unit), its top training images (the input patches under the receptive field) and their "
        "deconvnet projections; below, its pairing partner and mean activation. Click a tile for the channel's page.")


def rgb_png(img: np.ndarray, height: int) -> bytes:
    """An (h, w, 3) image in [0, 1] as PNG bytes, enlarged by whole pixels to at least `height` rows."""
    k = max(1, math.ceil(height / img.shape[0]))
    big = np.repeat(np.repeat(np.clip(img, 0, 1), k, 0), k, 1)
    buf = io.BytesIO()
    imsave(buf, big, format="png")
    return buf.getvalue()


def _vis(v: np.ndarray) -> np.ndarray:
    """(C, H, W) image in [0, 1] -> (H, W, 3); one channel is grey, three are colour, others their mean."""
    v = np.asarray(v, np.float32)
    rgb = v if v.shape[0] == 3 else np.repeat(v.mean(0, keepdims=True), 3, 0)
    return rgb.transpose(1, 2, 0)


def _filters(w: np.ndarray) -> np.ndarray:
    """(C_in, kh, kw) weights -> the input channels' kernels side by side, red positive, blue negative."""
    w = np.asarray(w, np.float32)
    peak = float(np.abs(w).max()) or 1.0
    planes = colormaps[DIVERGING](0.5 + 0.5 * w / peak)[..., :3].astype(np.float32)  # (C_in, kh, kw, 3)
    return mosaic(planes, min(len(planes), 8), gap=1, fill=WHITE)


def _same_height(*imgs: np.ndarray) -> np.ndarray:
    """The images side by side, each enlarged by whole pixels to about the tallest one's height."""
    top = max(i.shape[0] for i in imgs)
    parts = []
    for img in imgs:
        k = max(1, top // img.shape[0])
        big = np.repeat(np.repeat(img, k, 0), k, 1)
        pad = np.ones((top - big.shape[0], big.shape[1], 3), np.float32)
        parts += [np.concatenate([big, pad]), np.ones((top, max(2, top // 16), 3), np.float32)]
    return np.concatenate(parts[:-1], axis=1)


def _below(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """`bottom` enlarged by whole pixels to at most `top`'s width (and a third of its height), centred under it."""
    k = max(1, min(top.shape[1] // bottom.shape[1], max(1, top.shape[0] // (3 * bottom.shape[0]))))
    big = np.repeat(np.repeat(bottom, k, 0), k, 1)[:, :top.shape[1]]
    row = np.ones((big.shape[0], top.shape[1], 3), np.float32)
    left = (top.shape[1] - big.shape[1]) // 2
    row[:, left:left + big.shape[1]] = big
    return np.concatenate([top, np.ones((max(2, top.shape[0] // 16), top.shape[1], 3), np.float32), row])


def _short(layer: str) -> str:
    return layer.split(".")[-1]


def _about(r: Result, n: str, c: int, short: bool = False) -> str:
    """One line on channel c of layer n: partner, mean activation, value reached (`short`: the first two)."""
    a = r.arrays
    words = [f"mean activation {float(a[f'm.{n}.mean'][c]):.3g}"]
    if f"m.{n}.partner" in a:
        words.insert(0, f"partner c{int(a[f'm.{n}.partner'][c])} (μ {float(a[f'm.{n}.partner_mu'][c]):.2f})")
    if short:
        return " · ".join(w.replace("mean activation", "mean") for w in words)
    words += [f"positive {float(a[f'm.{n}.positive'][c]):.0%} of the time",
              f"visualisation reaches {float(a[f'm.{n}.vis_value'][c]):.3g}"]
    return "; ".join(words)


@register_page("microscope")
class MicroscopePage(ExperimentPage):
    def _layers(self, r: Result) -> list[str]:
        return [n for n in r.metrics.get("layers", []) if f"m.{n}.vis" in r.arrays]

    def summary(self, r: Result) -> str:
        layers = self._layers(r)
        if not layers:
            return ""
        counts = r.metrics.get("channels_by_layer", {})
        total = sum(int(counts.get(n, 0)) for n in layers)
        return (f"{r.metrics.get('model', 'The model')}: {total} channels in {len(layers)} conv layers, each with its "
                "feature visualisation, its filter, its top training images with their deconvnet projections, its "
                "pairing partner and its mean activation. Open a layer below, then click a channel's tile.")

    def parts(self, r: Result) -> dict[str, Part]:
        out = {}
        for n in self._layers(r):
            C = len(r.arrays[f"m.{n}.vis"])
            out[n] = Part(f"{n}: {C} channels", TILE)
            for c in range(C):
                out[f"{n}/c{c}"] = Part(f"{n}, channel {c}", _about(r, n, c), parent=n)
        return out

    def figures(self, r: Result) -> list[Figure]:
        figs = []
        for n in self._layers(r):
            a = r.arrays
            vis, weight = a[f"m.{n}.vis"], a[f"m.{n}.weight"]
            patch, proj = a.get(f"m.top.{n}.patch"), a.get(f"m.top.{n}.proj")
            for c in range(len(vis)):  # the tile: visualisation, top images, their projections; the filter below
                parts = [_vis(vis[c])]
                if patch is not None and proj is not None:
                    parts += [block(cells(patch[c], "patch")), block(cells(proj[c], "proj"))]
                tile = _below(_same_height(*parts), _filters(weight[c]))
                figs.append(Figure(f"c{c} · {_about(r, n, c, short=True)}", rgb_png(tile, 96), part=n,
                                   link=f"{n}/c{c}"))
            for c in range(len(vis)):
                key = f"{n}/c{c}"
                figs.append(Figure("Feature visualisation: the image that maximises the channel's unit at the centre "
                                   "of the map.", rgb_png(_vis(vis[c]), 224), part=key))
                figs.append(Figure("Filter weights, one kernel per input channel (red positive, blue negative).",
                                   rgb_png(_filters(weight[c]), 96), part=key))
                if patch is not None and proj is not None:
                    figs.append(Figure(
                        "Top training images: the input patches under the receptive field (left) and the deconvnet "
                        "projection of each one's activation (right), strongest first; pale cells are outside the "
                        "image.", rgb_png(_same_height(block(cells(patch[c], "patch")),
                                                       block(cells(proj[c], "proj"))), 224), part=key))
        return figs
