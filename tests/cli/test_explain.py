"""`convscope explain` and model references on the command line: a user's own model through train, summary,
explain and report; one sentence and exit 2 for every mistake."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from convscope.models import create_model
from tests.cli.test_cli import SMALL, assert_user_error, invoke

USER_FILE = textwrap.dedent("""
    import torch.nn.functional as F
    from torch import nn

    class Small(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 7 * 7, num_classes)

        def forward(self, x):
            x = F.max_pool2d(self.relu(self.bn(self.conv1(x))), 2)
            x = F.max_pool2d(self.relu(self.conv2(x)), 2)
            return self.fc(F.relu(x).flatten(1))

    def small(num_classes=10):
        return Small(num_classes)
""")


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(USER_FILE)
    return path


def test_list_names_every_method():
    result = invoke("explain", "--list")
    assert result.exit_code == 0
    for name in ("saliency", "integrated_gradients", "guided_backprop", "deconvnet", "gradcam", "occlusion"):
        assert name in result.output


def test_explain_a_test_image_of_a_zoo_model_with_weights(tmp_path):
    torch.manual_seed(0)
    save_file(create_model("lenet5").state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "e.png"
    result = invoke("explain", "gradcam", "lenet5", "--weights", str(tmp_path / "w.safetensors"), "--index", "4",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "test image 4 of mnist" in result.output and "gradcam of class" in result.output
    png = Image.open(out)
    assert png.format == "PNG" and png.width > 400


def test_a_users_model_through_train_summary_explain_and_report(tmp_path, user_file):
    run = tmp_path / "run"
    result = invoke("train", f"{user_file}:small", "--epochs", "1", "--out", str(run), *SMALL)
    assert result.exit_code == 0, result.output
    result = invoke("summary", f"{user_file}:small", "--input", "1x28x28")
    assert result.exit_code == 0 and "conv2" in result.output
    img = (np.random.default_rng(0).random((40, 30)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "digit.png")
    for method in ("guided_backprop", "integrated_gradients", "occlusion"):
        result = invoke("explain", method, "--run", str(run), "--image", str(tmp_path / "digit.png"), "--invert",
                        "--target", "3", "--out", str(tmp_path / f"{method}.png"))
        assert result.exit_code == 0, result.output
        assert "centre-cropped to 28×28" in result.output and "inverted" in result.output
    result = invoke("explain", "deconvnet", "--run", str(run), "--index", "0", "--target", "conv2:1",
                    "--out", str(tmp_path / "unit.png"))
    assert result.exit_code == 0 and "unit conv2:1" in result.output, result.output
    assert invoke("report", str(run)).exit_code == 0


@pytest.mark.parametrize(("args", "words"), [
    (("explain", "salience", "lenet5", "--index", "0"), ("unknown explanation method", "saliency")),
    (("explain", "saliency", "--index", "0"), ("name the model",)),
    (("explain", "saliency", "lenet5"), ("exactly one input",)),
    (("explain", "saliency", "lenet5", "--index", "0", "--image", "x.png"), ("exactly one input",)),
    (("explain", "saliency", "lenet5", "--index", "99999"), ("outside mnist's test set",)),
    (("explain", "saliency", "lenet5", "--index", "0", "--target", "12"), ("out of range", "0..9")),
    (("explain", "saliency", "lenet5", "--index", "0", "--target", "features.conv9:1"), ("unknown layer",)),
    (("explain", "saliency", "lenet5", "--index", "0", "--target", "a:b"), ("neither a class index",)),
    (("explain", "saliency", "lenet5", "--image", "missing.png"), ("does not exist",)),
    (("explain", "saliency", "lenet5", "--index", "0", "--weights", "missing.pt"), ("does not exist",)),
    (("explain", "guided_backprop", "lenet5-classic", "--index", "0"), ("defined only on relus",)),
    (("summary", "no/such.py:f"), ("does not exist",)),
    (("train", "torch.nn:Nope", "--epochs", "1"), ("has no factory",)),
])
def test_mistakes_are_one_sentence(args, words):
    assert_user_error(invoke(*args), *words)


def test_weights_for_another_model_name_the_first_mismatch(tmp_path):
    torch.save(create_model("lenet5", num_classes=5).state_dict(), tmp_path / "five.pt")
    assert_user_error(invoke("summary", "lenet5", "--weights", str(tmp_path / "five.pt")),
                      "classifier.fc3.weight", "(5, 84)", "num_classes")
