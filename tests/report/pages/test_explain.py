"""The explain page reads the sanity check and the deletion/insertion areas from the saved numbers."""

from __future__ import annotations

import numpy as np

from convscope.report.pages import page_for
from convscope.result import Result


def _result(final: dict[str, float]) -> Result:
    methods = list(final)
    arrays = {"images": np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32),
              "labels": np.array([3, 5]), "preds": np.array([3, 2]), "classes": np.array(list("0123456789")),
              "fraction": np.linspace(0, 1, 5, dtype=np.float32)}
    for m in methods:
        arrays[f"maps.{m}"] = np.random.default_rng(1).standard_normal((2, 8, 8)).astype(np.float32)
        arrays[f"deletion.{m}"] = np.linspace(0.9, 0.1, 5, dtype=np.float32)
        arrays[f"insertion.{m}"] = np.linspace(0.1, 0.9, 5, dtype=np.float32)
        arrays[f"sanity_abs.{m}"] = np.array([1.0, final[m]], dtype=np.float32)
    return Result("explain", "t", metrics={
        "model": "m", "methods": methods, "sanity_layers": ["fc", "conv"],
        "sanity_spearman_abs_all_layers": final,
        "deletion_auc": {m: 0.1 + 0.1 * i for i, m in enumerate(methods)},
        "insertion_auc": {m: 0.9 - 0.1 * i for i, m in enumerate(methods)}}, arrays=arrays)


def test_verdicts_follow_adebayo_et_al_and_the_summary_follows_the_numbers():
    r = _result({"saliency": 0.1, "guided_backprop": 0.9, "gradcam": 0.8})
    page = page_for("explain")
    rows = {row.figure.rsplit(", ", 1)[-1]: row for row in page.headline(r) if row.figure.startswith("sanity")}
    assert rows["saliency"].status == "ok"  # falls, as the paper finds
    assert rows["guided backprop"].status == "ok"  # stays, as the paper finds
    assert rows["gradcam"].status == "off" and "deviates" in rows["gradcam"].verdict  # the paper has it fall
    text = page.summary(r)
    assert "gradcam, guided backprop still rank" in text and "those of saliency change" in text
    assert "order of saliency lowers" in text  # the smallest deletion area


def test_figures_are_pngs():
    figs = page_for("explain").figures(_result({"saliency": 0.2, "deconvnet": 0.7}))
    assert len(figs) == 3 and all(f.png.startswith(b"\x89PNG") for f in figs)
