"""Figures: PNG bytes from arrays, diverging colours centred at zero, display-only scaling."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.image import imread

from convscope.report import figures


def decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(io.BytesIO(png), format="png")


def test_filter_planes_mean_or_identity() -> None:
    w = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    planes, what = figures.filter_planes(w)
    np.testing.assert_allclose(planes, w.mean(axis=1))
    assert "mean" in what and "3 input channels" in what
    planes, what = figures.filter_planes(w[:, :1])
    np.testing.assert_array_equal(planes, w[:, 0])
    with pytest.raises(ValueError):
        figures.filter_planes(w[0])


def test_symmetric_scale_keeps_sign_and_zero() -> None:
    p = np.array([[[-2.0, 1.0]], [[0.0, 0.0]], [[0.5, 0.25]]])
    s = figures.symmetric_scale(p)
    np.testing.assert_allclose(s, [[[-1.0, 0.5]], [[0.0, 0.0]], [[1.0, 0.5]]])


def test_mosaic_places_planes_row_major() -> None:
    planes = np.stack([np.full((2, 3), k, np.float32) for k in range(5)])
    m = figures.mosaic(planes, ncols=3, gap=1)
    assert m.shape == (2 * 3 - 1, 3 * 4 - 1)
    assert m[0, 0] == 0 and m[0, 4] == 1 and m[3, 4] == 4  # plane 4: row 1, column 1
    assert np.isnan(m[2, 0]) and np.isnan(m[3, 8])  # gutter and the empty last cell


def test_grid_columns() -> None:
    assert [figures.grid_columns(n) for n in (1, 6, 8, 9, 16, 17, 64)] == [1, 6, 8, 8, 8, 16, 16]


def test_figures_are_pngs() -> None:
    rng = np.random.default_rng(0)
    for png in (
        figures.filter_grid(rng.normal(size=(70, 4, 3, 3))),
        figures.rgb_filter_grid(rng.normal(size=(6, 3, 5, 5))),
        figures.activation_maps(rng.normal(size=(20, 7, 7))),
        figures.activation_maps(np.zeros((3, 4, 4))),
        figures.training_curves([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}]),
        figures.training_curves([{"epoch": 1, "test_acc": 91.0}]),
        figures.series_plot(np.linspace(0, 1, 100), "x"),
        figures.heatmap(rng.normal(size=(10, 12)), "x"),
        figures.heatmap(rng.random((3, 30)), "x"),
    ):
        img = decode(png)
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    with pytest.raises(ValueError):
        figures.rgb_filter_grid(rng.normal(size=(6, 2, 5, 5)))


def test_input_image_is_pixel_for_pixel() -> None:
    x = np.random.default_rng(0).random((1, 9, 7), dtype=np.float32)
    img = decode(figures.input_image(x))
    assert img.shape[:2] == (9, 7)
    np.testing.assert_allclose(img[..., 0], x[0], atol=1 / 255)
    rgb = decode(figures.input_image(np.stack([np.zeros((4, 4)), np.ones((4, 4)), np.full((4, 4), 2.0)])))
    np.testing.assert_allclose(rgb[0, 0, :3], [0, 1, 1])  # clipped to [0, 1] for display


def test_zero_is_white_and_sign_is_colour() -> None:
    """Colours are centred at zero, not at the midpoint of min and max: 0 is white, -w/3 a pale blue."""
    w = np.zeros((1, 1, 3, 3), np.float32)
    w[0, 0, 0, 0], w[0, 0, 2, 2] = 0.3, -0.1
    img = decode(figures.filter_grid(w, cell_px=90))[..., :3]
    cmap = colormaps[figures.DIVERGING]

    def count(value: float) -> int:  # pixels of the colour `value` (in [0, 1]) of the colormap
        return int((np.abs(img - np.asarray(cmap(value)[:3])).max(axis=-1) < 0.02).sum())

    cell = (90 // 3) ** 2 // 2  # about half a weight's square, leaving room for the frame
    assert count(1.0) > cell  # +0.3, the largest |w|: the darkest red
    assert count(0.5 - 0.5 / 3) > cell  # -0.1 = -max/3: a pale blue
    assert count(0.5) > 7 * cell  # the seven zero weights: white
    assert count(0.0) < cell  # the darkest blue only in the colour bar
