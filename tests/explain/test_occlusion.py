"""Occlusion against Captum 0.9 and against a loop over windows written out by hand."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch

from convscope.errors import UserError
from convscope.explain.occlusion import Occlusion, window_starts
from tests.explain.conftest import zoo


@pytest.mark.parametrize(("window", "stride"), [(4, 4), (5, 3), (7, 2)])
def test_occlusion_equals_captum(window, stride):
    model, x = zoo("lenet5")
    model.eval()
    t = torch.tensor([2, 0, 9])
    ours = Occlusion(model, window=window, stride=stride, perturbations_per_eval=7).attribute(x, t)
    theirs = ca.Occlusion(model).attribute(x, target=t, sliding_window_shapes=(1, window, window),
                                          strides=(1, stride, stride), perturbations_per_eval=7)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["alexnet", "user"])
def test_occlusion_on_rgb_models_with_a_baseline_image(name):
    model, x = zoo(name)
    model.eval()
    base = torch.full(x.shape[1:], 0.5)
    C, H, _ = x.shape[1:]
    w, s = (H // 4, H // 4)
    ours = Occlusion(model, window=w, stride=s, baseline=base).attribute(x, 1)
    theirs = ca.Occlusion(model).attribute(x, target=1, sliding_window_shapes=(C, w, w), strides=(C, s, s),
                                          baselines=base[None])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def _by_hand(model, x, target, window, stride, probability):
    """The definition, one window at a time: each pixel gets the mean score drop of the windows covering it."""
    def score(inp):
        out = model(inp)
        out = out.softmax(1) if probability else out
        return out[:, target]

    H, W = x.shape[2:]
    total, count = torch.zeros(len(x), 1, H, W), torch.zeros(1, 1, H, W)
    with torch.no_grad():
        s0 = score(x)
        y = 0
        while True:
            xx = 0
            while True:
                occ = x.clone()
                occ[:, :, y:y + window, xx:xx + window] = 0
                total[:, :, y:y + window, xx:xx + window] += (s0 - score(occ)).view(-1, 1, 1, 1)
                count[:, :, y:y + window, xx:xx + window] += 1
                if xx + window >= W:
                    break
                xx += stride
            if y + window >= H:
                break
            y += stride
    return (total / count).expand_as(x)


def test_probability_output_matches_the_definition():
    model, x = zoo("lenet5")
    model.eval()
    ours = Occlusion(model, window=6, stride=5, output="probability").attribute(x, 4)
    torch.testing.assert_close(ours, _by_hand(model, x, 4, 6, 5, True), atol=1e-6, rtol=1e-5)
    logit = Occlusion(model, window=6, stride=5).attribute(x, 4)
    torch.testing.assert_close(logit, _by_hand(model, x, 4, 6, 5, False), atol=1e-5, rtol=1e-5)


def test_windows_cover_every_pixel_and_bad_settings_are_refused():
    assert window_starts(28, 4, 4) == [0, 4, 8, 12, 16, 20, 24]
    assert window_starts(28, 5, 3) == [0, 3, 6, 9, 12, 15, 18, 21, 24]  # the last reaches 28 = 24 + 5 − 1
    assert window_starts(10, 4, 4) == [0, 4, 8]  # the last window is cut at the border
    model, x = zoo("lenet5")
    with pytest.raises(UserError, match="larger than"):
        Occlusion(model, window=29).attribute(x, 0)
    with pytest.raises(UserError, match="positive int"):
        Occlusion(model, window=0)
    with pytest.raises(UserError, match="Unknown occlusion output"):
        Occlusion(model, output="softmax")
