"""`summarize`: LeCun's counts for LeNet-5 (docs/REFERENCE.md §2), layer depths (§1), receptive fields,
and that the model leaves exactly as it came in."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import InputShapeError
from convscope.models import create_model
from convscope.models.summary import LayerRow, Summary, summarize
from tests.untouched import assert_untouched, snapshot
from tests.usermodels import USER_INPUT, user_model


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def test_lenet5_classic_reproduces_the_paper_table() -> None:
    rows = {r.name: r for r in summarize(create_model("lenet5-classic")).rows}
    paper = {  # layer: (maps, params, connections), LeCun et al. 1998 §II.B
        "features.c1": ((6, 28, 28), 156, 122_304),
        "features.s2": ((6, 14, 14), 12, 5_880),
        "features.c3": ((16, 10, 10), 1_516, 151_600),
        "features.s4": ((16, 5, 5), 32, 2_000),
        "features.c5": ((120, 1, 1), 48_120, 48_120),
        "classifier.f6": ((84,), 10_164, 10_164),
    }
    measured = {n: (rows[n].output_shape, rows[n].params, rows[n].connections) for n in paper}
    assert measured == paper


@pytest.mark.parametrize(
    ("name", "kwargs", "depth"),
    [
        ("lenet5", {}, 5),
        ("lenet5-classic", {"rbf": True}, 5),
        ("alexnet", {}, 8),
        ("alexnet", {"groups": 2}, 8),
        ("zfnet", {}, 8),
        ("vgg11", {}, 11),
        ("vgg16", {}, 16),
        ("vgg19", {}, 19),
        ("googlenet", {}, 22),
        ("allconv-c", {}, 8),
    ],
)
def test_counted_depth(name: str, kwargs: dict, depth: int) -> None:
    summary = summarize(meta_model(name, **kwargs))
    assert summary.depth == depth
    if name != "googlenet":  # a chain: every counted layer is on the one path
        assert len(summary.counted_layers()) == depth
    else:  # 3 stem convs + 9 blocks × 6 convs + fc, of which 22 on the longest path
        assert len(summary.counted_layers()) == 58


def test_receptive_fields() -> None:
    vgg = {r.name: (r.rf, r.jump) for r in summarize(meta_model("vgg16")).rows}
    assert vgg["features.conv1_1"] == (3, 1) and vgg["features.pool1"] == (6, 2)
    assert vgg["features.conv5_3"] == (196, 16) and vgg["features.pool5"] == (212, 32)
    assert vgg["classifier.fc6"] == (224, 224)  # after flatten: the whole input
    alex = {r.name: (r.rf, r.jump) for r in summarize(meta_model("alexnet")).rows}
    assert alex["features.conv1"] == (11, 4) and alex["features.pool5"] == (195, 32)
    lenet = {r.name: r.rf for r in summarize(create_model("lenet5-classic")).rows}
    assert lenet["features.c3"] == 14 and lenet["features.c5"] == 32
    goog = {r.name: r.rf for r in summarize(meta_model("googlenet")).rows}
    assert goog["features.avgpool"] == 224  # global pooling sees the whole input


def test_totals_and_trainable() -> None:
    model = create_model("lenet5")
    model.features.conv1.requires_grad_(False)
    summary = summarize(model)
    assert summary.total_params == 61_706 == sum(r.params for r in summary.rows)
    assert summary.trainable_params == 61_706 - 156
    assert summary.input_shape == (1, 28, 28)
    assert summary.rows[0] == LayerRow("features.conv1", "Conv2d", (6, 28, 28), 156, 122_304, 5, 1, True)
    pool = next(r for r in summary.rows if r.name == "features.pool1")
    assert pool.connections == 6 * 14 * 14 * 4 and pool.params == 0 and not pool.counted


def test_to_dict_and_table() -> None:
    summary = summarize(create_model("lenet5"))
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["total_params"] == 61_706 and data["depth"] == 5 and data["input_shape"] == [1, 28, 28]
    assert data["rows"][0]["output_shape"] == [6, 28, 28]
    table = summary.to_table()
    assert table[0][0] == "layer" and len(table) == len(summary.rows) + 1
    assert all(len(row) == len(table[0]) for row in table)
    assert "depth 5" in str(summary)


def test_model_left_unchanged() -> None:
    model = create_model("lenet5")
    model.train()
    model.classifier.eval()
    before = snapshot(model)
    summarize(model)
    assert_untouched(model, before)


def test_hooks_removed_and_mode_restored_on_error() -> None:
    model = create_model("lenet5").train()
    before = snapshot(model)
    with pytest.raises(InputShapeError, match="28×28"):
        summarize(model, input_shape=(1, 32, 32))
    assert_untouched(model, before)


def test_needs_an_input_shape() -> None:
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(InputShapeError, match="input_shape"):
        summarize(plain)
    summary = summarize(plain, input_shape=(3, 8, 8))
    assert isinstance(summary, Summary) and [r.name for r in summary.rows] == ["0", "1"]
    assert summary.rows[0].output_shape == (4, 6, 6) and summary.depth == 1


class TwoBranch(nn.Module):
    """A user model with functional ops: branches joined by torch.cat, F.relu, torch.flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.short = nn.Conv2d(1, 2, 1)
        self.long = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1))
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(torch.cat((self.short(x), self.long(x)), dim=1))
        return self.fc(torch.flatten(self.pool(x), 1))


def test_user_model_with_functional_ops() -> None:
    rows = {r.name: r for r in summarize(TwoBranch(), input_shape=(1, 8, 8)).rows}
    assert rows["pool"].rf == 5 + 1 and rows["pool"].jump == 2  # widest branch (two 3×3) then 2×2 pool
    assert rows["fc"].rf == 8
    assert summarize(TwoBranch(), input_shape=(1, 8, 8)).depth == 3  # long branch (2) + fc


@pytest.mark.parametrize("shape, words", [
    ((1, 28, 28), r"UserNet does not run on one input of shape \(1, 28, 28\) \(.*channels.*\); pass the input_shape"),
    ((3, 32), r"UserNet does not run on one input of shape \(3, 32\)"),
    ((3, 0, 32), r"positive whole numbers, got \(3, 0, 32\)"),
    ((3, 32.5, 32), r"positive whole numbers"),
])
def test_a_shape_a_user_model_cannot_take_is_a_user_error(shape, words) -> None:
    model = user_model()
    before = snapshot(model)
    with pytest.raises(InputShapeError, match=words):
        summarize(model, input_shape=shape)
    assert_untouched(model, before)
    assert summarize(model, input_shape=USER_INPUT).rows[-1].output_shape == (10,)
