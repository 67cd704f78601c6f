import pytest
import torch
from torch import nn

from convscope.analysis.invariance import hflip, invariance_scores, rotate, translate
from convscope.errors import UserError
from tests.untouched import assert_untouched, snapshot


class _GlobalSum(nn.Module):
    """Each channel's output is its global sum broadcast to every position: invariant to any permutation of pixels."""

    def forward(self, x):
        return x.sum(dim=(2, 3), keepdim=True).expand_as(x).contiguous()


class _Bank(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)


def test_a_bank_invariant_by_construction_scores_one_over_g():
    torch.manual_seed(0)
    x = torch.rand(400, 3, 8, 8)
    family = {"hflip": [hflip], "roll": [lambda t: torch.roll(t, 3, dims=-1)]}
    scores = invariance_scores(_Bank(_GlobalSum()), x, ["layer"], family, rate=0.05)
    for inv in scores["layer"].values():
        # whenever it fires on an original it fires on the transformed one, at the same place: L = 1
        assert inv.local_rate == pytest.approx([1.0] * 3)
        assert inv.score == pytest.approx(float((1 / inv.global_rate).mean()))
        assert 15 < inv.score < 25  # ≈ 1/0.05


def test_random_filters_on_noise_are_not_flip_invariant():
    torch.manual_seed(0)
    model = _Bank(nn.Conv2d(1, 8, 5, padding=2))
    scores = invariance_scores(model, torch.randn(200, 1, 16, 16), ["layer"], {"hflip": [hflip]})
    assert scores["layer"]["hflip"].score < 10  # far below 1/G = 100


def test_transforms():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert translate(1, 0)(x)[0, 0, 0].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert translate(0, -1)(x)[0, 0, -1].tolist() == [0.0] * 4
    torch.testing.assert_close(rotate(0)(x), x)
    torch.testing.assert_close(hflip(hflip(x)), x)


def test_model_is_left_as_found():
    model = _Bank(nn.Conv2d(1, 4, 3)).train()
    x = torch.randn(50, 1, 10, 10)
    before = snapshot(model)
    invariance_scores(model, x, ["layer"], top_fraction=0.5)
    assert_untouched(model, before)


def test_batching_does_not_change_the_scores():
    torch.manual_seed(1)
    model = _Bank(nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU()))
    x = torch.randn(90, 1, 12, 12).cumsum(-1).cumsum(-2)  # smooth, so shifted versions still fire
    whole = invariance_scores(model, x, ["layer"], batch_size=1000)
    pieces = invariance_scores(model, x, ["layer"], batch_size=13)
    assert whole["layer"]["translate3"].score > 1
    for family, inv in whole["layer"].items():
        assert pieces["layer"][family].score == pytest.approx(inv.score, rel=1e-12)
        assert pieces["layer"][family].local_rate == pytest.approx(inv.local_rate, rel=1e-12, nan_ok=True)


@pytest.mark.parametrize("layer", ["layer.1", "layer.2"])  # a Flatten's (N, C·h·w), a Linear's (N, C)
def test_a_non_spatial_layer_is_refused(layer):
    model = _Bank(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)))
    with pytest.raises(UserError, match=rf"'{layer}' puts out shape \(20, \d+\), not \(N, C, h, w\)"):
        invariance_scores(model, torch.randn(20, 1, 10, 10), ["layer.0", layer])
