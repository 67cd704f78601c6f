"""train/run.py's atlas inputs: what a run directory saves of a model, and the model left in its own modes."""

import copy

import numpy as np
import torch

from convscope.io import read_json
from convscope.models import create_model
from convscope.train.run import write_atlas_inputs
from tests.untouched import assert_untouched, snapshot


def test_write_atlas_inputs_runs_in_eval_mode_and_leaves_the_model_as_found(tmp_path, tiny_data):
    _, (x, y) = tiny_data
    torch.manual_seed(0)
    model = create_model("lenet5")
    model.train()
    model.classifier.eval()  # mixed modes, as a user may leave them
    before = snapshot(model)
    write_atlas_inputs(model, tmp_path, x, y, [str(c) for c in range(10)])
    assert_untouched(model, before)
    arrays = np.load(tmp_path / "layers.npz")
    picks = [int((y == c).nonzero()[0]) for c in range(6)]
    with torch.no_grad():
        preds = copy.deepcopy(model).eval()(x[picks]).argmax(1)
    assert arrays["preds"].tolist() == preds.tolist() and arrays["labels"].tolist() == list(range(6))
    assert read_json(tmp_path / "layers.json")["conv_layers"] == ["features.conv1", "features.conv2"]
