"""The zf page draws every figure from a saved Result alone and judges the settle order and the pointing from the
saved numbers."""

from __future__ import annotations

import numpy as np

from convscope.report import render_atlas
from convscope.report.pages import page_for
from convscope.result import Published, Result
from tests.report.pages.render import decode


def _result(settle: dict[str, float], hit: float = 0.9, chance: float = 0.2) -> Result:
    rng = np.random.default_rng(0)
    layers = list(settle)
    a: dict[str, np.ndarray] = {"s0.classes": np.array(list("0123456789")),
                                "s0.panel.images": rng.random((2, 1, 12, 12), dtype=np.float32),
                                "s0.panel.labels": np.array([3, 5]), "s0.panel.channel": np.array([1, 4]),
                                "s0.panel.feature": rng.random((2, 4, 4)),
                                "s0.panel.probability": rng.random((2, 4, 4)),
                                "s0.panel.label": rng.integers(0, 10, (2, 4, 4)),
                                "s0.panel.base_probability": np.array([0.9, 0.8]),
                                "s0.panel.base_feature": np.array([3.0, 4.0]),
                                "s0.panel.projection": rng.standard_normal((2, 1, 12, 12)),
                                "s0.panel.rows": np.array([0, 3, 6, 9]), "s0.panel.cols": np.array([0, 3, 6, 9]),
                                "s0.evo.epochs": np.array([1, 2, 3])}
    for i, n in enumerate(layers):
        rf = 3 + 4 * i
        patch = rng.random((3, 9, 1, rf, rf)).astype(np.float32)
        patch[0, 0, :, :1] = np.nan  # cut by the border
        a.update({f"s0.top.{n}.patch": patch, f"s0.top.{n}.proj": rng.standard_normal((3, 9, 1, rf, rf)),
                  f"s0.top.{n}.value": np.sort(rng.random((3, 9)))[:, ::-1],
                  f"s0.evo.{n}.channels": np.array([0, 2]), f"s0.evo.{n}.index": rng.integers(0, 3, (2, 3, 9)),
                  f"s0.evo.{n}.settle": np.array([settle[n], settle[n]]),
                  f"s0.evo.{n}.overlap": rng.random((2, 3)),
                  f"s0.evo.{n}.proj": rng.standard_normal((2, 3, 1, rf, rf))})
    per = {"model": "lenet5 trained here on mnist (3 epochs, 600 images)", "dataset": "mnist", "conv_layers": layers,
           "pointing_images": 200}
    return Result("zf", "t", metrics={
        "studies": {"s0": "lenet5 on mnist"}, "feature_settle_epoch_by_layer": {"s0": settle},
        "occlusion_pointing": {"s0": hit}, "occlusion_pointing_chance": {"s0": chance},
        "occlusion_pointing_projection": {"s0": 0.5}, "occlusion_pointing_projection_chance": {"s0": 0.1},
        "deconv_vs_gradient_max_abs_diff": 0.0, "per_study": {"s0": per}},
        published={"deconv_vs_gradient_max_abs_diff": Published(0.0, "theory", kind="expected (theory)",
                                                                  tolerance=1e-5)},
        provenance={"config": {"window": 3}}, arrays=a)


def test_verdicts_follow_the_numbers():
    page = page_for("zf")
    rows = page.headline(_result({"features.conv1": 1, "features.conv2": 3}))
    assert [r.status for r in rows] == ["ok", "ok", "ok"]
    assert "conv1 1, conv2 3" in rows[0].measured and "4.5× chance" in rows[1].verdict
    rows = page.headline(_result({"features.conv1": 3, "features.conv2": 1}, hit=0.21))
    assert rows[0].status == "off" and rows[1].status == "off"  # later at the bottom; 21 % vs 20 % is chance
    assert page.headline(_result({"features.conv1": 2, "features.conv2": 2}))[0].status == "info"
    assert "epoch conv1 1, conv2 3" in page.summary(_result({"features.conv1": 1, "features.conv2": 3}))


def test_figures_are_pngs_one_top9_per_layer():
    figs = page_for("zf").figures(_result({"features.conv1": 1, "features.conv2": 3}))
    assert len(figs) == 2 + 2 + 2
    for f in figs:
        assert decode(f.png).shape[0] > 50
    assert [f.part for f in figs] == ["", "", "", "", "s0-conv1", "s0-conv2"]  # the top-9 grids go on layer pages


def test_the_atlas_has_one_page_per_conv_layer_linked_from_the_experiment(tmp_path):
    _result({"features.conv1": 1, "features.conv2": 3}).save(tmp_path)
    atlas = render_atlas(tmp_path).parent
    pages = sorted(p.name for p in atlas.glob("exp-*.html"))
    exp = next(p for p in pages if "--" not in p)
    main = (atlas / exp).read_text(encoding="utf-8")
    parts = [p for p in pages if "--" in p]
    assert len(parts) == 2 and all(f'href="{p}"' in main for p in parts)
    assert main.count('src="img/') == 4  # pointing, settle, Fig. 7, Fig. 4 stay on the experiment's page
    for p, layer in zip(parts, ("features.conv1", "features.conv2"), strict=True):
        html = (atlas / p).read_text(encoding="utf-8")
        assert f"{layer}, top-9" in html and html.count('src="img/') == 1 and f'href="{exp}"' in html
        src = html.split('src="', 1)[1].split('"', 1)[0]
        assert decode((atlas / src).read_bytes()).shape[0] > 50


def test_the_black_square_measure_gets_its_own_row_and_bar():
    r = _result({"features.conv1": 1, "features.conv2": 3}, hit=0.15, chance=0.4)
    r.metrics["occlusion_pointing_background"] = {"s0": 0.7}
    r.metrics["occlusion_pointing_background_chance"] = {"s0": 0.4}
    rows = [row for row in page_for("zf").headline(r) if "pointing" in row.figure]
    assert [("grey" in row.figure, row.status) for row in rows] == [(True, "off"), (False, "ok")]
    assert "70% against 40% with a black square" in page_for("zf").summary(r)
    three = decode(page_for("zf").figures(r)[0].png)
    two = decode(page_for("zf").figures(_result({"features.conv1": 1, "features.conv2": 3}))[0].png)
    assert three.shape[1] > two.shape[1]  # one more pair of bars


def test_top9_pages_of_a_users_layers_keep_their_names_apart():
    """A user's model names layers "stem.0" and "block.conv1": a bare index or a repeated last name keeps the
    whole dotted name, so no two layers share a page."""
    from convscope.report.pages.zf import _part_key

    layers = ["stem.0", "block.conv1", "block.conv2", "head.conv1", "conv"]
    keys = [_part_key("s0", n, layers) for n in layers]
    assert keys == ["s0-stem.0", "s0-block.conv1", "s0-conv2", "s0-head.conv1", "s0-conv"]
