"""Fig. 7 occlusion maps against a tiny case computed by hand and against `Occlusion` where they coincide;
occlusion pointing against hand-made maps."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

from convscope.errors import UserError
from convscope.explain import Deconvnet, Occlusion
from convscope.explain.occlusion_maps import (
    OcclusionMaps,
    ink_region,
    occlusion_maps,
    occlusion_pointing,
    top_fraction_region,
)
from tests.explain.conftest import zoo
from tests.untouched import assert_untouched, snapshot


class _Tiny(nn.Module):
    """features.conv: channel 0 = x, channel 1 = −x (1×1, no bias); logits (sum of channel 0, 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 1, bias=False)))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32, 2, bias=False))
        with torch.no_grad():
            self.features.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.classifier[1].weight.zero_()
            self.classifier[1].weight[0, :16] = 1.0

    def forward(self, x):
        return self.classifier(self.features(x))


def test_a_tiny_case_by_hand():
    x = torch.tensor([[0.9, 0.1, 0.0, 0.3], [0.2, 0.8, 0.7, 0.0],
                      [0.0, 0.4, 1.0, 0.6], [0.5, 0.0, 0.2, 0.1]]).view(1, 1, 4, 4)
    x = torch.cat([x, x.flip(-1) - 0.45])  # the second image sums to a negative total: class 1 wins
    maps = occlusion_maps(_Tiny(), x, torch.tensor([0, 1]), window=2, stride=1, fill=0.5)
    assert maps.layer == "features.conv" and maps.rows == maps.cols == [0, 1, 2]
    assert maps.channel.tolist() == [0, 0]  # the map x has the largest single activation, not −x
    for b in range(2):
        assert maps.base_feature[b] == pytest.approx(float(x[b].clamp(min=0).sum()), abs=1e-5)  # rectified
        for i in range(3):
            for j in range(3):
                occluded = x[b, 0].clone()
                occluded[i:i + 2, j:j + 2] = 0.5  # the window of grey
                s_occ = float(occluded.sum())
                p0 = 1 / (1 + math.exp(-s_occ))  # softmax of (s_occ, 0)
                assert maps.feature[b, i, j] == pytest.approx(float(occluded.clamp(min=0).sum()), abs=1e-5)
                assert maps.probability[b, i, j] == pytest.approx(p0 if b == 0 else 1 - p0, abs=1e-6)
                assert maps.label[b, i, j] == (0 if s_occ > 0 else 1)
    assert maps.base_label.tolist() == [0, 1]
    torch.testing.assert_close(maps.projection, torch.ones_like(x))  # d(sum x)/dx


def test_with_tiling_windows_the_maps_are_occlusions_score_drops():
    model, x = zoo("lenet5")
    model.eval()
    y = torch.tensor([3, 1, 4])
    maps = occlusion_maps(model, x, y, window=7, stride=7, fill=0.5, batch_size=5)  # several passes
    assert maps.layer == "features.conv2" and maps.feature.shape == (3, 4, 4)
    occ = Occlusion(model, window=7, stride=7, baseline=0.5, output="probability").attribute(x, y)
    corners = occ[:, 0, ::7, ::7]  # each window's pixels all carry its one drop
    torch.testing.assert_close(maps.base_probability[:, None, None] - maps.probability, corners, atol=1e-6, rtol=1e-5)
    for b in range(3):
        unit = ("features.conv2", int(maps.channel[b]))
        torch.testing.assert_close(maps.projection[b:b + 1], Deconvnet(model).attribute(x[b:b + 1], unit))
    # The activity is rectified: on the ReLU's output it is Occlusion's score of the whole map.
    relu = occlusion_maps(model, x, y, window=7, stride=7, fill=0.5, layer="features.relu2")
    for b in range(3):
        unit = ("features.relu2", int(relu.channel[b]))
        occ_f = Occlusion(model, window=7, stride=7, baseline=0.5).attribute(x[b:b + 1], unit)[0, 0, ::7, ::7]
        torch.testing.assert_close(relu.base_feature[b] - relu.feature[b], occ_f, atol=1e-4, rtol=1e-5)
    with torch.no_grad():
        labels = model(x).argmax(1)
    assert maps.base_label.tolist() == labels.tolist()


def test_the_model_is_left_as_found_and_bad_settings_are_refused():
    model, x = zoo("lenet5")
    model.train()
    before = snapshot(model)
    occlusion_maps(model, x[:2], 1, window=8, stride=4, layer="features.conv1")
    assert_untouched(model, before)
    with pytest.raises(UserError, match="larger than"):
        occlusion_maps(model, x, 1, window=40)
    with pytest.raises(UserError, match="not feature maps"):
        occlusion_maps(model, x, 1, layer="classifier.fc1")


def _maps(prob: torch.Tensor, base: torch.Tensor, window=(2, 2), rows=(0, 2), cols=(0, 2)) -> OcclusionMaps:
    B = len(prob)
    z = torch.zeros(B)
    return OcclusionMaps(layer="l", window=window, rows=list(rows), cols=list(cols), channel=z.long(), feature=prob,
                         probability=prob, label=prob.long(), base_feature=z, base_probability=base,
                         base_label=z.long(), projection=torch.zeros(B, 1, 4, 4))


def test_pointing_by_hand():
    # 4×4 images, 2×2 windows at stride 2: window centres (0, 0), (0, 2), (2, 0), (2, 2) (lower-left of the middle)
    region = torch.zeros(3, 4, 4, dtype=torch.bool)
    region[:, 2:, 2:] = True  # the bottom-right quarter holds the evidence
    region[2, 0, 0] = True
    prob = torch.tensor([[[0.9, 0.8], [0.7, 0.2]],  # largest drop at the bottom right: inside
                         [[0.1, 0.8], [0.7, 0.6]],  # at the top left: outside
                         [[0.9, 0.9], [0.9, 0.9]]])  # nothing drops: a miss even though (0, 0) is in the region
    p = occlusion_pointing(_maps(prob, torch.tensor([0.9, 0.9, 0.9])), region)
    assert p.best.tolist() == [[1, 1], [0, 0], [0, 0]]
    assert p.hit.tolist() == [True, False, False] and p.fraction == pytest.approx(1 / 3)
    assert p.chance.tolist() == [0.25, 0.25, 0.5] and p.chance_fraction == pytest.approx(1 / 3)
    torch.testing.assert_close(p.drop, torch.tensor([0.7, 0.8, 0.0]))


def test_centres_of_windows_cut_at_the_border():
    m = _maps(torch.zeros(1, 2, 2), torch.zeros(1), window=(3, 3), rows=(0, 2), cols=(0, 2))
    ys, xs = m.centres(4, 4)  # the second window covers rows 2..3 only
    assert ys.tolist() == [1, 2] and xs.tolist() == [1, 2]


def test_regions():
    x = torch.zeros(1, 1, 2, 3)
    x[0, 0, 0, 1] = 0.7
    x[0, 0, 1, 2] = 0.4
    assert ink_region(x).tolist() == [[[False, True, False], [False, False, False]]]
    a = torch.tensor([[[[0.0, -3.0, 1.0], [2.0, 0.5, 0.0]]]])
    assert top_fraction_region(a, q=2 / 6).tolist() == [[[False, True, False], [True, False, False]]]
    with pytest.raises(UserError):
        top_fraction_region(a, q=0)
