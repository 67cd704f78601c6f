"""`reproduce microscope` end to end on a tiny LeNet-5 run: every channel's arrays against oracles computed here
(the pairing partner from the filters' cosines, the mean activation from a forward pass), and its atlas: a page
per layer whose tiles open a page per channel."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from convscope.config import TrainConfig
from convscope.errors import UserError
from convscope.experiments import run_experiment
from convscope.experiments.microscope import MicroscopeConfig
from convscope.result import Result
from convscope.train.run import load_run_model
from tests.report.pages.render import render_without_torch

TINY = TrainConfig(epochs=1, batch_size=64, train_subset=600, test_subset=100, device="cpu")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("microscope")
    cfg = MicroscopeConfig(train=TINY, scan_images=200, mean_images=50, featurevis_steps=8, top_k=4)
    run_experiment("microscope", out, cfg, progress=False)
    return out


@pytest.mark.slow
def test_every_channel_has_its_views_and_they_match_the_oracles(saved):
    r = Result.load(saved)
    model, _ = load_run_model(saved / "run")
    assert r.metrics["layers"] == ["features.conv1", "features.conv2"]
    for n, (C, cin) in {"features.conv1": (6, 1), "features.conv2": (16, 6)}.items():
        assert r.arrays[f"m.{n}.weight"].shape == (C, cin, 5, 5)
        w = model.get_submodule(n).weight.detach().double().flatten(1)
        assert np.allclose(r.arrays[f"m.{n}.weight"].reshape(C, -1), w.numpy(), atol=1e-6)
        # the partner: the other filter with the most negative cosine, by hand
        cos = (w / w.norm(dim=1, keepdim=True)) @ (w / w.norm(dim=1, keepdim=True)).T
        cos.fill_diagonal_(2.0)
        assert (r.arrays[f"m.{n}.partner"] == cos.argmin(1).numpy()).all()
        assert np.allclose(r.arrays[f"m.{n}.partner_mu"], cos.min(1).values.numpy(), atol=1e-5)
        assert r.arrays[f"m.{n}.vis"].shape == (C, 1, 28, 28) and r.arrays[f"m.{n}.vis_value"].shape == (C,)
        assert r.arrays[f"m.top.{n}.patch"].shape[:3] == (C, 4, 1)
    x = Result.load(saved)  # the mean activation: conv1's output over the first 50 test images, by a forward pass
    from convscope.data import load_dataset
    test = load_dataset("mnist", "test").subset(100, seed=TINY.seed).tensors()[0][:50]
    with torch.no_grad():
        a = model.features.conv1(test)
    assert np.allclose(x.arrays["m.features.conv1.mean"], a.mean(dim=(0, 2, 3)).numpy(), atol=1e-5)
    assert np.allclose(x.arrays["m.features.conv1.positive"], (a > 0).float().mean(dim=(0, 2, 3)).numpy())


@pytest.mark.slow
def test_the_atlas_has_a_tile_per_channel_that_opens_its_page(saved):
    atlas = render_without_torch(saved)
    main = (atlas / "exp-microscope.html").read_text(encoding="utf-8")
    layer_pages = re.findall(r'href="(exp-microscope--features\.conv\d\.html)"', main)
    assert sorted(set(layer_pages)) == ["exp-microscope--features.conv1.html", "exp-microscope--features.conv2.html"]
    conv2 = (atlas / "exp-microscope--features.conv2.html").read_text(encoding="utf-8")
    tiles = re.findall(r'<a class="tile" href="([^"]+)"><img src="([^"]+)"', conv2)
    assert len(tiles) == 16
    for href, src in tiles:
        assert (atlas / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        page = (atlas / href).read_text(encoding="utf-8")
        assert "partner c" in page and "mean activation" in page and page.count('<img src="img/') == 3
        assert 'href="exp-microscope--features.conv2.html"' in page  # back up to the layer


def test_bad_settings_are_one_sentence(tmp_path):
    with pytest.raises(UserError, match="at least 1"):
        MicroscopeConfig(top_k=0)
    with pytest.raises(UserError, match="no checkpoint"):
        run_experiment("microscope", tmp_path / "o", MicroscopeConfig(run=str(tmp_path)), progress=False)


@pytest.mark.slow
def test_the_layer_and_channel_pages_load_cleanly_in_chromium(saved):
    from tests.report.browser import check_pages, find_chromium

    if find_chromium() is None:
        pytest.skip("no Chromium binary on PATH (set $CHROMIUM to one)")
    atlas = render_without_torch(saved)
    pages = [atlas / "exp-microscope--features.conv2.html", atlas / "exp-microscope--features.conv2_c15.html"]
    assert all(p.is_file() for p in pages)
    assert check_pages(pages) == []  # every tile loads (the last ones too, below the fold)
