"""The recos page: figures from saved arrays, a summary that follows the numbers, headline verdicts.

Every Result here is built by hand with the keys and shapes `convscope.experiments.recos` saves (the slow
test in tests/experiments/test_recos.py renders this page from a real run), saved and loaded again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convscope.report.pages import page_for
from convscope.report.pages.recos import RecosPage, correlation_histograms, linear_templates
from convscope.result import Published, Result

from .render import decode, render_without_torch

LAYERS = ["input", "features.conv1", "features.relu1", "features.pool1", "features.conv2", "features.relu2",
          "features.pool2", "classifier.fc1", "classifier.relu3", "classifier.fc2", "classifier.relu4",
          "classifier.fc3"]
BG_LAYERS = ["input", "features.relu1", "features.relu2", "classifier.relu3", "classifier.relu4"]
KUO = "Kuo 2016"


def by_seed(**changes: list[float]) -> dict[str, list[float]]:
    """Two seeds of every scalar figure the experiment saves, plausible for a trained LeNet-5."""
    seeds = {
        "acc_original": [0.990, 0.992], "acc_inverted": [0.30, 0.34],
        "acc_negated_original": [0.41, 0.45], "acc_negated_inverted": [0.95, 0.97],
        "acc_exact_swap_original": [0.30, 0.34], "acc_exact_swap_inverted": [0.990, 0.992],
        "exact_swap_mismatches": [0, 0], "exact_swap_max_logit_diff": [2e-7, 3e-7], "negated_swap_mismatches": [90, 80],
        "both_polarity_acc_original": [0.988, 0.988], "both_polarity_acc_inverted": [0.986, 0.988],
        "crelu_first_acc_original": [0.99, 0.99], "crelu_first_acc_inverted": [0.52, 0.48],
        "anchor_raw_sign_flip_frac": [0.4, 0.42], "anchor_centred_flip_max_err": [1e-15, 2e-15],
        "conv1_dc_cosine": [0.2, 0.25], "linear_collapse_max_abs_diff": [6e-7, 7e-7],
        "acc_linear": [0.92, 0.93], "acc_linear_map": [0.92, 0.93], "acc_background": [0.97, 0.98],
        "acc_clean_model_on_background": [0.6, 0.7], "acc_background_model_on_clean": [0.95, 0.96],
    }
    seeds.update(changes)
    return seeds


def published() -> dict[str, Published]:
    return {
        "acc_original": Published(0.9894, KUO, tolerance=0.005),
        "acc_inverted": Published(0.3736, KUO, tolerance=0.15),
        "exact_swap_mismatches": Published(0, "theory", kind="expected (theory)", tolerance=0),
        "linear_collapse_max_abs_diff": Published(0, "theory", kind="expected (theory)", tolerance=1e-4),
        "both_polarity_acc_inverted": Published("high", KUO),
    }


def arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    centred = rng.uniform(-1, 1, (300, 6))
    conv1, conv2 = rng.normal(size=(3, 6, 28, 28)), rng.normal(size=(3, 16, 10, 10))
    return {
        "conv1_weight_by_seed": rng.normal(size=(2, 6, 1, 5, 5)),
        "anchor_cosines": np.stack([rng.uniform(-1, 1, (2, 300, 6)), np.stack([centred, -centred])]),
        "linear_A": rng.normal(size=(10, 784)),
        "backgrounds": rng.random((10, 28, 28)), "background_examples": rng.random((10, 28, 28)),
        "background_inputs": rng.random((3, 28, 28)),
        "background_maps.features.conv1": conv1, "background_maps.features.relu1": np.maximum(conv1, 0),
        "background_maps.features.conv2": conv2, "background_maps.features.relu2": np.maximum(conv2, 0),
        "knn_acc_by_seed_layer": rng.random((2, len(LAYERS))),
        "scatter_ratio_by_seed_layer": rng.random((2, len(LAYERS))),
        "background_similarity_by_seed_layer": rng.random((2, len(BG_LAYERS))),
    }


def saved(tmp_path: Path, seeds: dict[str, list[float]] | None = None, with_arrays: bool = True) -> Result:
    """A recos Result as the experiment saves it, written to `tmp_path` and loaded back."""
    seeds = seeds or by_seed()
    metrics = {"layers": LAYERS, "background_layers": BG_LAYERS, "test_images": 100, "epochs": 2,
               **{k: float(np.mean(v)) for k, v in seeds.items()}}
    metrics["exact_swap_mismatches"] = int(sum(seeds["exact_swap_mismatches"]))
    metrics["linear_collapse_max_abs_diff"] = max(seeds["linear_collapse_max_abs_diff"])
    rng = np.random.default_rng(0)
    Result(name="recos", title="RECOS", metrics=metrics, by_seed=seeds, published=published(),
           provenance={"seeds": [0, 1]},
           arrays={k: v.astype(np.float32) for k, v in arrays(rng).items()} if with_arrays else {}).save(tmp_path)
    return Result.load(tmp_path)


def test_every_figure_is_drawn_from_the_saved_arrays(tmp_path: Path) -> None:
    r = saved(tmp_path)
    page = page_for("recos")
    assert isinstance(page, RecosPage)
    figures = page.figures(r)
    assert len(figures) == 8  # polarity, anchors, cosines, templates, gallery, maps, similarity, clustering
    for fig in figures:
        img = decode(fig.png)
        assert img.shape[0] > 100 and img.shape[1] > 200
        assert len(fig.caption) > 80  # says what to see, not just what it is
    assert len({f.caption for f in figures}) == 8


def test_a_result_without_the_arrays_draws_what_it_can(tmp_path: Path) -> None:
    r = saved(tmp_path, with_arrays=False)
    figures = RecosPage().figures(r)
    assert [f.caption.split()[0] for f in figures] == ["Accuracy"]  # the bars need only the metrics
    bare = Result(name="recos", title="a user's recos", metrics={"test_acc": 0.5})
    assert RecosPage().figures(bare) == [] and RecosPage().summary(bare) == ""


def test_summary_says_what_the_numbers_say(tmp_path: Path) -> None:
    text = RecosPage().summary(saved(tmp_path / "a"))
    # means of the seeds above, by hand: 99.1 %, 32.0 %, 43.0 %, 96.0 %, 98.8 %, 98.7 %, 92.5 %
    for part in ("99.1 % on the original", "but only 32.0 % on grey-inverted", "2 seeds", "no prediction changed",
                 "43.0 % on originals and 96.0 % on inverted", "98.8 % and 98.7 %",
                 "a CReLU first layer trained on originals only 50.0 % on inverted", "is one affine map",
                 "reaches 92.5 %, against 99.1 %"):
        assert part in text, part
    worse = RecosPage().summary(saved(tmp_path / "b", by_seed(exact_swap_mismatches=[0, 3],
                                                               acc_inverted=[0.97, 0.97],
                                                               linear_collapse_max_abs_diff=[1e-6, 0.5])))
    assert "3 predictions changed, where the mathematics says none may" in worse
    assert "and 97.0 % on grey-inverted" in worse and "but only" not in worse
    assert "(mean of 2 seeds;" in worse and "(one seed;" in RecosPage().summary(saved(tmp_path / "c", {
        k: v[:1] for k, v in by_seed().items()}))
    assert "is not one affine map after all (deviation up to 0.5)" in worse


def test_headline_verdicts_inside_and_outside_the_tolerance(tmp_path: Path) -> None:
    rows = {row.figure: row for row in RecosPage().headline(saved(tmp_path / "a"))}
    acc = rows["accuracy, original test digits"]
    # seeds 99.0 and 99.2 %: mean 99.1, sample std 0.1414; Kuo 98.94 ± 0.5 -> inside
    assert acc.measured == "99.1 ± 0.1414 % (2 seeds)" and acc.published == "98.94 %"
    assert acc.status == "ok" and acc.seeds == "99, 99.2"
    swap = rows["exact swap: predictions that differ"]
    assert swap.status == "ok" and swap.kind == "expected (theory)"
    assert rows["linear network: largest |net(x) − (A·x + b)|"].status == "ok"
    assert rows["trained on both polarities: accuracy on inverted"].status == "info"  # "high": no number

    off = {row.figure: row for row in RecosPage().headline(saved(
        tmp_path / "b", by_seed(acc_original=[0.97, 0.975], exact_swap_mismatches=[0, 2],
                                linear_collapse_max_abs_diff=[0.3, 0.5])))}
    assert off["accuracy, original test digits"].status == "off"
    assert off["accuracy, original test digits"].verdict.startswith("deviates by -1.69 %")  # 97.25 − 98.94
    assert off["exact swap: predictions that differ"].status == "off"
    assert off["linear network: largest |net(x) − (A·x + b)|"].status == "off"


def test_drawing_functions_take_plain_arrays() -> None:
    rng = np.random.default_rng(1)
    raw = rng.uniform(-1, 1, (50, 3))
    raw[0] = np.nan  # flat patches have no direction: NaN rows are skipped, not drawn
    decode(correlation_histograms((raw, -raw), (raw, -raw)))
    img = decode(linear_templates(rng.normal(size=(4, 36)), (6, 6)))
    assert img.shape[1] > img.shape[0]  # one row of templates
    with pytest.raises(ValueError):
        linear_templates(rng.normal(size=(4, 35)), (6, 6))


@pytest.mark.slow
def test_the_atlas_draws_every_figure_without_torch(tmp_path: Path) -> None:
    saved(tmp_path / "recos")
    atlas = render_without_torch(tmp_path / "recos")
    page = (atlas / "exp-recos.html").read_text()
    assert page.count("<figure>") == 8 and "is missing" not in page
    assert "but only 32.0 % on grey-inverted" in page and "reproduces (within ±0.5 %)" in page
    assert len(list((atlas / "img" / "exp-recos").glob("[0-9].png"))) == 8
