"""`reproduce zf` end to end on a tiny MNIST run: every figure's arrays are saved and the page draws them without
torch; the batched projection the top-9 figure uses agrees with the deconvnet-rule gradient on both networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.analysis.topk import receptive_box
from convscope.config import TrainConfig
from convscope.errors import UserError
from convscope.experiments import run_experiment
from convscope.experiments.zf import ZFConfig, top_grids
from convscope.explain import create_method
from convscope.explain.deconvnet import DeconvnetProjection
from convscope.hooks import activations, conv_layers
from convscope.models import create_model
from convscope.result import Result
from tests.experiments.atlas import figures_drawn
from tests.untouched import assert_untouched, snapshot
from tests.usermodels import user_model

TINY = TrainConfig(epochs=2, batch_size=64, train_subset=600, test_subset=200, device="cpu", keep_epochs=True)


@pytest.mark.slow
def test_a_tiny_zf_run_saves_everything_the_page_draws(tmp_path):
    cfg = ZFConfig(train=TINY, second=None, scan_images=200, evolution_images=100, evolution_channels=2,
                   panel_images=2, pointing_images=10, top_k=4)
    run_experiment("zf", tmp_path, cfg, progress=False)
    r = Result.load(tmp_path)
    assert list(r.metrics["studies"]) == ["s0"]
    for layer, (c, rf) in {"features.conv1": (6, 5), "features.conv2": (16, 14)}.items():
        assert r.arrays[f"s0.top.{layer}.patch"].shape == (c, 4, 1, rf, rf)
        assert r.arrays[f"s0.top.{layer}.proj"].shape == (c, 4, 1, rf, rf)
        assert (np.diff(r.arrays[f"s0.top.{layer}.value"], axis=1) <= 0).all()  # strongest first
        assert r.arrays[f"s0.evo.{layer}.index"].shape == (2, 2, 4)
        assert r.arrays[f"s0.evo.{layer}.proj"].shape == (2, 2, 1, rf, rf)
    assert r.arrays["s0.panel.probability"].shape == (2, 12, 12)  # 7×7 squares every 2 pixels, the last cut
    assert r.arrays["s0.pointing.hit"].shape == (10,)
    assert r.metrics["deconv_vs_gradient_max_abs_diff"] < 1e-5
    assert set(r.metrics["feature_settle_epoch_by_layer"]["s0"]) == {"features.conv1", "features.conv2"}
    assert 0 < r.metrics["occlusion_pointing_chance"]["s0"] < 1
    # the black square's measure uses the same images and region: the same chance, its own hits
    assert r.metrics["occlusion_pointing_background_chance"]["s0"] == r.metrics["occlusion_pointing_chance"]["s0"]
    assert r.arrays["s0.pointing_background.hit"].shape == (10,)
    assert r.metrics["occlusion_max_rel_diff_vs_full"] < 1e-4  # incremental occlusion against full re-inference
    assert sorted(p.name for p in (tmp_path / "runs" / "0-lenet5-mnist" / "checkpoint").glob("model-*")) == [
        "model-0001.safetensors", "model-0002.safetensors"]
    assert figures_drawn(tmp_path, "zf") == 2 + 2 + 2  # pointing, settle; panels, evolution; a top-9 per layer


def test_a_run_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(UserError, match="holds no checkpoint"):
        run_experiment("zf", tmp_path, ZFConfig(run=str(tmp_path)), progress=False)


@pytest.mark.parametrize("name", ["lenet5", "allconv-c"])
def test_projection_of_one_unit_per_example_equals_the_rule_gradient(name):
    torch.manual_seed(0)
    model = create_model(name, **({"in_channels": 1, "width": 0.125} if name == "allconv-c" else {})).eval()
    x = torch.rand(3, 1, 28, 28)
    project = DeconvnetProjection(model, start="one")
    rule = create_method("deconvnet", model)
    shapes = {n: a.shape[2:] for n, a in activations(model, x[:1], conv_layers(model)).items()}
    for layer in conv_layers(model)[:4]:
        h, w = shapes[layer]
        for unit in [(layer, 1), (layer, 1, h // 2, w - 1)]:
            torch.testing.assert_close(project.attribute(x, unit), rule.attribute(x, unit), atol=1e-6, rtol=1e-5)
        units = [(0, 0, 0), (1, h // 2, w // 3), (2, h - 1, w - 1)]
        batched = project.attribute_units(x, layer, units)
        for b, u in enumerate(units):
            torch.testing.assert_close(batched[b:b + 1], rule.attribute(x[b:b + 1], (layer, *u)), atol=1e-6,
                                       rtol=1e-5)


@pytest.mark.slow
def test_zf_on_the_users_cifar10_files(tmp_path, monkeypatch):
    from tests.data.fakes import pin_tiny, write_cifar

    _, arrays, _ = write_cifar(tmp_path / "data", "cifar10", {"train": 120, "test": 40}, as_tar=False)
    pin_tiny(monkeypatch, "cifar10", arrays)
    train = TrainConfig(model="allconv-c", data="cifar10", model_args={"width": 0.05}, epochs=2, batch_size=40,
                        device="cpu", keep_epochs=True)
    cfg = ZFConfig(train=train, second=None, root=str(tmp_path / "data"), scan_images=60, evolution_images=40,
                   evolution_channels=2, panel_images=1, pointing_images=4, top_k=2)
    run_experiment("zf", tmp_path / "out", cfg, progress=False)
    r = Result.load(tmp_path / "out")
    assert r.metrics["per_study"]["s0"]["dataset"] == "cifar10"
    assert r.arrays["s0.panel.images"].shape[1:] == (3, 32, 32)  # colour images keep their channels
    layer = r.metrics["per_study"]["s0"]["conv_layers"][0]
    assert r.arrays[f"s0.top.{layer}.patch"].shape[2] == 3 and r.arrays[f"s0.top.{layer}.proj"].shape[2] == 3
    assert figures_drawn(tmp_path / "out", "zf") == 4 + len(r.metrics["per_study"]["s0"]["conv_layers"])


def test_a_residual_model_with_f_relu_gets_rule_projections_and_probed_boxes():
    """The user's model (residual block, F.relu, BatchNorm, an in-place ReLU used twice): below `conv` it is no
    chain, so each top image's unit is projected by the deconvnet rule (checked against the rule's one-unit
    gradient) and its box found by autograd (checked against the box worked by hand in tests/analysis)."""
    torch.manual_seed(0)
    model, x = user_model(), torch.rand(12, 3, 32, 32)
    before = snapshot(model)
    arrays: dict = {}
    out = top_grids(model, ["stem.0", "conv"], x, 3, "t", arrays)
    assert out["projection_by_layer"] == {"stem.0": "projection", "conv": "rule"}
    rule = create_method("deconvnet", model)
    index, pos, boxes = (arrays[f"t.top.conv.{f}"] for f in ("index", "pos", "box"))
    for c in (0, 5):
        for j in range(3):
            y, xx = (int(v) for v in pos[c, j])
            expected = rule.attribute(x[index[c, j]][None], ("conv", c, y, xx))[0]
            assert tuple(boxes[c, j]) == receptive_box(model, "conv", y, xx, (32, 32))
            y0, y1, x0, x1 = boxes[c, j]
            got = arrays["t.top.conv.proj"][c, j]  # the box, in the full receptive field's frame (NaN around)
            inside = got[~np.isnan(got)].reshape(3, y1 - y0, x1 - x0)
            np.testing.assert_allclose(inside, expected[:, y0:y1, x0:x1].numpy(), atol=1e-6, rtol=1e-5)
    assert receptive_box(model, "conv", 3, 3, (32, 32)) == (2, 11, 2, 11)
    assert_untouched(model, before)
