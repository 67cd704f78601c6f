import numpy as np
import pytest
import torch

from convscope.analysis.pairing import pairing, pairing_by_layer, random_pairing
from convscope.errors import UserError
from convscope.models import create_model
from tests.untouched import assert_untouched, snapshot
from tests.usermodels import user_model


def test_planted_antipodal_pairs_have_mu_minus_one():
    torch.manual_seed(0)
    half = torch.randn(4, 3, 5, 5)
    w = torch.cat([half, -2.5 * half])  # φ_{i+4} = −φ_i up to scale
    mu, pair = pairing(w)
    torch.testing.assert_close(mu, torch.full((8,), -1.0, dtype=torch.float64))
    assert pair.tolist() == [4, 5, 6, 7, 0, 1, 2, 3]


def test_hand_worked_three_filters():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])
    mu, pair = pairing(w)
    # cosines: <0,1>=0, <0,2>=-1/√2, <1,2>=1/√2
    torch.testing.assert_close(mu, torch.tensor([-2 ** -0.5, 0.0, -2 ** -0.5], dtype=torch.float64))
    assert pair.tolist() == [2, 0, 0]


def test_random_baseline_is_seeded_and_near_zero():
    a, b = random_pairing((64, 16, 3, 3), seed=1), random_pairing((64, 16, 3, 3), seed=1)
    torch.testing.assert_close(a, b)
    assert -0.4 < float(a.mean()) < 0.0  # the minimum of 63 cosines in 144-D is a little below zero


def test_every_conv_layer_of_any_model_and_the_model_is_untouched():
    model = create_model("allconv-c", in_channels=1, width=0.25)
    before = snapshot(model)
    stats = pairing_by_layer(model)
    assert list(stats) == [n for n, _ in model.named_modules() if isinstance(_, torch.nn.Conv2d)]
    s = stats["features.conv1"].summary()
    assert set(s) >= {"mu_mean", "mu_median", "frac_below_minus_half", "mu_mean_random"}
    assert all(np.all((p.mu >= -1 - 1e-9) & (p.mu <= 1 + 1e-9)) for p in stats.values())
    assert_untouched(model, before)


def test_one_filter_cannot_be_paired():
    with pytest.raises(ValueError, match="at least 2"):
        pairing(torch.randn(1, 3, 3, 3))


@pytest.mark.parametrize("layer", ["stem.1", "block.relu", "fc"])  # BatchNorm, ReLU, Linear
def test_a_layer_that_is_not_a_convolution_is_refused(layer):
    model = user_model()
    before = snapshot(model)
    with pytest.raises(UserError, match=rf"'{layer}' is a \w+, not a convolution.*stem.0, block.conv1"):
        pairing_by_layer(model, [layer])
    assert list(pairing_by_layer(model)) == ["stem.0", "block.conv1", "block.conv2", "conv"]
    assert_untouched(model, before)
