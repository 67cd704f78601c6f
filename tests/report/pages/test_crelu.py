"""The crelu page: figures from saved arrays, a summary that follows the numbers, headline verdicts.

Every Result here is built by hand with the keys and shapes `convscope.experiments.crelu` saves (the slow
test in tests/experiments/test_crelu.py renders this page from a real run), saved and loaded again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convscope.report.pages import page_for
from convscope.report.pages.crelu import CReLUPage, reconstructions
from convscope.result import Published, Result

from .render import decode, render_without_torch

ACTS = [f"features.relu{i}" for i in range(1, 8)]
MODELS = {"lenet5 (MNIST)": ["features.conv1", "features.conv2"],
          "allconv-c baseline": [f"features.conv{i}" for i in range(1, 9)],
          "allconv-c crelu": [f"features.conv{i}" for i in range(1, 9)]}
ROWS = ["input", "learned, no pool", "learned, pooled", "random, no pool", "random, pooled"]
PAPER = "Shang et al. 2016"


def saved(tmp_path: Path, errors: dict[str, list[float]] | None = None, recon_variant: str = "crelu-half",
          learned_conv2: float = 0.93, channels: int = 1, tolerance: float | None = 0.02) -> Result:
    """A crelu Result as the experiment saves it, written to `tmp_path` and loaded back."""
    errors = errors or {"baseline": [18.0, 18.4], "crelu": [16.2, 16.8], "crelu-half": [19.5, 19.9]}
    rng = np.random.default_rng(0)
    mu = {"lenet5 (MNIST)": -0.6, "allconv-c baseline": -0.55, "allconv-c crelu": -0.2}
    metrics = {
        "dataset": "fashion-mnist", "width": 0.25, "epochs": 2, "train_images": 20000, "variants": list(errors),
        **{f"test_error_pct.{v}": float(np.mean(e)) for v, e in errors.items()},
        "params_by_variant": {"baseline": 90000, "crelu": 180000, "crelu-half": 45000},
        "pairing_models": list(MODELS),
        "mu_mean_by_layer": {m: {layer: mu[m] for layer in layers} for m, layers in MODELS.items()},
        "mu_mean_random_by_layer": {m: {layer: -0.3 for layer in layers} for m, layers in MODELS.items()},
        "invariance_layers": ACTS,
        "invariance_by_layer": {v: {t: list(np.linspace(5, 40, 7)) for t in ("hflip", "rotate15", "translate3")}
                                for v in ("baseline", "crelu")},
        "recon_variant": recon_variant,
        "recon_ratio_learned.conv2_pool": learned_conv2, "recon_ratio_learned.conv2_nopool": 0.7,
        "recon_ratio_learned.conv5_pool": 0.95, "recon_ratio_learned.conv5_nopool": 0.6,
        "recon_ratio_random.conv2_pool": 0.98, "recon_ratio_random.conv2_nopool": 0.8,
        "recon_ratio_random.conv5_pool": 0.99, "recon_ratio_random.conv5_nopool": 0.8,
        "recon_rows": ROWS,
    }
    arrays = {f"{what}.{i}.{layer}": rng.uniform(-1, 0, 12 if "lenet" in m else 24)
              for what in ("mu", "mu_random") for i, (m, layers) in enumerate(MODELS.items()) for layer in layers}
    arrays["recon_pictures"] = rng.random((len(ROWS), 4, channels, 28, 28))
    published = {
        **{f"test_error_pct.{v}": Published(p, PAPER) for v, p in (("baseline", 9.17), ("crelu", 8.43),
                                                                  ("crelu-half", 8.37))},
        "recon_ratio_learned.conv2_pool": Published(0.92, PAPER, tolerance=tolerance),
        "recon_ratio_random.conv2_pool": Published(0.99, PAPER, tolerance=tolerance),
        "mu_mean_by_layer": Published("conv1 below random", PAPER),
        "params_by_variant": Published("baseline 1.4M", PAPER),
    }
    Result(name="crelu", title="CReLU", metrics=metrics, by_seed={f"test_error_pct.{v}": e for v, e in errors.items()},
           published=published, arrays={k: v.astype(np.float32) for k, v in arrays.items()}).save(tmp_path)
    return Result.load(tmp_path)


def test_every_figure_is_drawn_from_the_saved_arrays(tmp_path: Path) -> None:
    r = saved(tmp_path)
    page = page_for("crelu")
    assert isinstance(page, CReLUPage)
    figures = page.figures(r)
    assert len(figures) == 7  # pairing ×3 models, variants, invariance, reconstruction ratios, pictures
    for fig in figures:
        img = decode(fig.png)
        assert img.shape[0] > 100 and img.shape[1] > 200
        assert len(fig.caption) > 80
    assert [f.caption.count("lenet5 (MNIST)") for f in figures[:3]] == [1, 0, 0]
    assert "allconv-c crelu," in figures[2].caption
    assert "CReLU (half) network" in figures[5].caption


def test_colour_pictures_are_drawn_in_colour(tmp_path: Path) -> None:
    pictures = CReLUPage()._pictures(saved(tmp_path, channels=3))  # CIFAR: (rows, n, 3, H, W)
    assert pictures is not None and decode(pictures.png).shape[1] > 200
    red = np.zeros((2, 3, 8, 8))
    red[:, 0] = 1.0

    def red_pixels(img: np.ndarray) -> int:
        rgb = img[..., :3].reshape(-1, 3)
        return int(((rgb[:, 0] > 0.9) & (rgb[:, 1] < 0.1) & (rgb[:, 2] < 0.1)).sum())

    assert red_pixels(decode(reconstructions({"input": red}))) > 100
    assert red_pixels(decode(reconstructions({"input": red[:, :1]}))) == 0  # one channel: grey


def test_summary_says_what_the_numbers_say(tmp_path: Path) -> None:
    text = CReLUPage().summary(saved(tmp_path / "a"))
    # by hand: CReLU 16.5 ± 0.42, baseline 18.2 ± 0.28; μ −0.55 vs −0.30; learned 0.93 < random 0.98
    for part in ("On fashion-mnist at 0.25 of the paper's width", "CReLU reaches 16.5 ± 0.4 % test error",
                 "against 18.2 ± 0.3 % for the ReLU baseline (2 seeds): lower, as in",
                 "pair with an opposite-phase partner more than random ones do (mean μ −0.55 against −0.30",
                 "with CReLU the mean μ is −0.20", "relative error 0.93", "against 0.98 from random ones: learned "
                 "filters keep more of it than random ones, as in the paper"):
        assert part in text, part
    worse = CReLUPage().summary(saved(tmp_path / "b", errors={"baseline": [15.0, 15.0], "crelu": [17.0, 17.0]},
                                      learned_conv2=0.985))
    assert "CReLU reaches 17.0 % test error against 15.0 % for the ReLU baseline (2 seeds): not lower, unlike" in worse
    assert "keep no more of it than random ones, unlike the paper" in worse


def test_headline_verdicts_and_the_network_measured(tmp_path: Path) -> None:
    rows = {row.figure: row for row in CReLUPage().headline(saved(tmp_path / "a"))}
    learned = rows["‖x − x′‖/‖x‖, conv2's input, max pooled, learned filters"]
    assert learned.status == "ok" and learned.measured == "0.93"  # |0.93 − 0.92| ≤ 0.02
    random = rows["‖x − x′‖/‖x‖, conv2's input, max pooled, random filters"]
    assert random.status == "ok"  # |0.98 − 0.99| ≤ 0.02
    crelu = rows["test error (%), CReLU"]
    assert crelu.measured == "16.5 ± 0.4243 (2 seeds)" and crelu.seeds == "16.2, 16.8" and crelu.status == "info"
    assert rows["pairing μ by layer"].measured.startswith("lenet5 (MNIST) conv1 −0.60 (random −0.30)")
    assert rows["parameters by variant"].measured == "baseline 90,000, crelu 180,000, crelu-half 45,000"

    far = {row.figure: row for row in CReLUPage().headline(saved(tmp_path / "b", learned_conv2=0.85))}
    assert far["‖x − x′‖/‖x‖, conv2's input, max pooled, learned filters"].verdict.startswith("deviates by -0.07")

    other = CReLUPage().headline(saved(tmp_path / "c", recon_variant="crelu", tolerance=None))
    marked = [row for row in other if row.figure.startswith("‖x − x′‖")]
    assert len(marked) == 2
    for row in marked:
        assert row.figure.endswith("— measured on CReLU, not the paper's CReLU (half)") and row.status == "info"


@pytest.mark.slow
def test_the_atlas_draws_every_figure_without_torch(tmp_path: Path) -> None:
    saved(tmp_path / "crelu")
    atlas = render_without_torch(tmp_path / "crelu")
    page = (atlas / "exp-crelu.html").read_text()
    assert page.count("<figure>") == 7 and "is missing" not in page
    assert "lower, as in the paper" in page and "reproduces (within ±0.02)" in page
    assert len(list((atlas / "img" / "exp-crelu").glob("[0-9].png"))) == 7
