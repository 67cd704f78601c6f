"""`reproduce inversion` end to end on a tiny MNIST run: the reconstructions of every layer, trained and random,
and of several images at the deep layer are saved, and the page draws them without torch; bad settings are
UserErrors."""

from __future__ import annotations

import pytest

from convscope.config import TrainConfig
from convscope.errors import UserError
from convscope.experiments import run_experiment
from convscope.experiments.inversion import InversionConfig, tv_by_depth
from convscope.result import Result
from tests.experiments.atlas import figures_drawn

TINY = TrainConfig(epochs=1, batch_size=64, train_subset=300, test_subset=100, device="cpu")
LAYERS = ["features.conv1", "features.relu1", "features.pool1", "features.conv2", "features.relu2", "features.pool2",
          "classifier.fc1", "classifier.relu3", "classifier.fc2", "classifier.relu4", "classifier.fc3"]


@pytest.mark.slow
def test_a_tiny_inversion_run_saves_everything_the_page_draws(tmp_path):
    cfg = InversionConfig(train=TINY, second=None, images=2, deep_images=3, steps=12, featurevis_channels=1,
                          featurevis_steps=4)
    run_experiment("inversion", tmp_path, cfg, progress=False)
    r = Result.load(tmp_path)
    st = r.metrics["per_study"]["s0"]
    assert st["layers"] == LAYERS and st["deep_layer"] == "features.pool2"
    for tag in ("trained", "random"):
        assert r.arrays[f"s0.{tag}.images"].shape == (11, 2, 1, 28, 28)
        assert r.arrays[f"s0.{tag}.errors"].shape == (11, 2)
        assert set(r.metrics["inversion_error_by_layer"]["s0"][tag]) == set(LAYERS)
    assert r.arrays["s0.deep.images"].shape == (3, 1, 28, 28)
    assert len(set(r.arrays["s0.labels"].tolist())) == 2  # different classes
    assert set(r.metrics["featurevis_objective_by_layer"]["s0"]) == {"features.conv1", "features.conv2"}
    assert r.provenance["wall_seconds"] > 0
    assert figures_drawn(tmp_path, "inversion") == 4  # by depth trained, random; error by layer; deep layer


def test_tv_grows_geometrically_with_depth():
    cfg = InversionConfig(lambda_tv_first=0.01, lambda_tv_last=1.0)
    assert tv_by_depth(cfg, 3) == pytest.approx([0.01, 0.1, 1.0])
    assert tv_by_depth(cfg, 1) == [0.01]


@pytest.mark.slow
def test_an_imagenet_network_given_by_weights_is_a_third_study(tmp_path):
    from safetensors.torch import save_file

    from convscope.models import create_model

    weights = tmp_path / "alexnet.safetensors"  # an AlexNet state dict, as a user's file would hold one
    save_file({k: v.contiguous() for k, v in create_model("alexnet").state_dict().items()}, str(weights))
    cfg = InversionConfig(train=TINY, second=None, images=2, deep_images=2, steps=6, featurevis_channels=1,
                          featurevis_steps=2, weights=str(weights), imagenet_size=64,
                          imagenet_images=("chelsea", "coffee"),
                          imagenet_layers=("features.relu1", "features.pool5", "classifier.fc8"))
    run_experiment("inversion", tmp_path / "out", cfg, progress=False)
    r = Result.load(tmp_path / "out")
    st = r.metrics["per_study"]["s1"]
    assert st["layers"] == ["features.relu1", "features.pool5", "classifier.fc8"]
    for tag in ("trained", "random"):
        assert r.arrays[f"s1.{tag}.images"].shape == (3, 2, 3, 64, 64)  # layer, image, colour
        assert set(r.metrics["inversion_error_by_layer"]["s1"][tag]) == set(st["layers"])
    assert r.arrays["s1.originals"].shape == (2, 3, 64, 64) and 0 <= r.arrays["s1.originals"].min()
    assert figures_drawn(tmp_path / "out", "inversion") == 4 + 3  # the third study has no deep-layer figure


def test_imagenet_settings_are_checked_with_a_sentence(tmp_path):
    with pytest.raises(UserError, match="alexnet or vgg16"):
        InversionConfig(weights="w.pth", imagenet_model="resnet50")
    with pytest.raises(UserError, match="does not exist|No such|cannot|not found|read"):
        run_experiment("inversion", tmp_path / "o",
                       InversionConfig(train=TINY, second=None, weights=str(tmp_path / "none.pth")), progress=False)


def test_an_unknown_deep_layer_names_the_choices(tmp_path):
    cfg = InversionConfig(train=TINY, second=None, images=1, deep_images=1, steps=1, deep_layer="features.conv9")
    with pytest.raises(UserError, match="choose one of features.conv1, features.relu1"):
        run_experiment("inversion", tmp_path, cfg, progress=False)


def test_the_lab_size_is_smaller_than_the_full_protocol():
    lab, full = InversionConfig.lab(), InversionConfig()
    assert lab.second is None and lab.steps < full.steps and lab.images <= full.images
