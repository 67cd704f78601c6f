"""The inversion page draws every figure from a saved Result alone and judges "deeper is further from the image"
from the saved numbers."""

from __future__ import annotations

import numpy as np

from convscope.report.pages import page_for
from convscope.result import Published, Result
from tests.report.pages.render import decode

LAYERS = ["features.conv1", "features.pool1", "classifier.fc1"]


def _result(mse: list[float]) -> Result:
    rng = np.random.default_rng(0)
    L, B = len(LAYERS), 2
    a = {"s0.originals": rng.random((B, 1, 10, 10), dtype=np.float32), "s0.labels": np.array([3, 5]),
         "s0.classes": np.array(list("0123456789")),
         "s0.deep.originals": rng.random((3, 1, 10, 10), dtype=np.float32), "s0.deep.labels": np.array([0, 1, 2]),
         "s0.deep.images": rng.standard_normal((3, 1, 10, 10)).astype(np.float32), "s0.deep.errors": np.ones(3)}
    for tag in ("trained", "random"):
        a[f"s0.{tag}.images"] = rng.random((L, B, 1, 10, 10), dtype=np.float32)
        a[f"s0.{tag}.errors"] = rng.random((L, B))
    err = {"trained": dict(zip(LAYERS, [0.1, 0.2, 0.3], strict=True)),
           "random": dict(zip(LAYERS, [0.05, 0.1, 0.4], strict=True))}
    mses = dict(zip(LAYERS, mse, strict=True))
    per = {"network": "lenet5 on mnist", "layers": LAYERS, "deep_layer": "features.pool1",
           "inversion_error_by_layer": err, "pixel_mse_by_layer": mses}
    rises = float(np.mean(mse[-1:])) > float(np.mean(mse[:1]))
    return Result("inversion", "t", metrics={
        "studies": {"s0": "lenet5 on mnist"}, "per_study": {"s0": per}, "inversion_error_by_layer": {"s0": err},
        "pixel_mse_by_layer": {"s0": mses}, "pixel_mse_rises_with_depth": {"s0": rises}},
        published={"pixel_mse_rises_with_depth": Published("deeper is blurrier", "M&V")}, arrays=a)


def test_verdicts_and_summary_follow_the_numbers():
    page = page_for("inversion")
    rows = page.headline(_result([0.01, 0.05, 0.2]))
    assert rows[0].status == "ok" and "conv1 0.01, pool1 0.05, fc1 0.2" in rows[0].measured
    assert "trained: conv1 0.10, pool1 0.20, fc1 0.30; random: conv1 0.05" in rows[1].measured
    assert page.headline(_result([0.2, 0.05, 0.01]))[0].status == "off"
    text = page.summary(_result([0.01, 0.05, 0.2]))
    assert "from conv1 is 0.01" in text and "fc1 0.2" in text and "10%–30%" in text and "as the paper finds" in text
    assert "unlike the paper" in page.summary(_result([0.2, 0.05, 0.01]))


def test_figures_are_pngs_of_the_right_layout():
    figs = page_for("inversion").figures(_result([0.01, 0.05, 0.2]))
    assert len(figs) == 4
    images = [decode(f.png) for f in figs]
    depth, deep = images[0], images[3]
    assert depth.shape[1] > 1.3 * depth.shape[0]  # 2 rows (images) by 4 columns (the original and 3 layers)
    assert deep.shape[1] > deep.shape[0]
