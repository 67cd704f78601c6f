"""Deletion/insertion curves against a hand-computed case, and the randomisation sanity check on methods whose
answer is known: one that ignores the model (must stay at correlation 1) and saliency (must fall)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from convscope.errors import UserError
from convscope.explain.base import Attribution
from convscope.explain.gradients import Saliency
from convscope.explain.metrics import (
    deletion_insertion,
    gaussian_blur,
    randomization_check,
    spearman,
    substitute_for,
    weighted_layers,
)
from tests.explain.conftest import zoo


def _pixel_sum_model() -> nn.Module:
    """Two classes: logit 1 = 4·(sum of the pixels), logit 0 = 0."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.0] * 4, [4.0] * 4]))
        model[1].bias.zero_()
    return model.eval()


def test_curves_equal_a_hand_computation():
    model = _pixel_sum_model()
    x = torch.tensor([0.4, 0.1, 0.3, 0.2]).view(1, 1, 2, 2)
    attr = x.clone()  # rank: pixel 0 (0.4), 2 (0.3), 3 (0.2), 1 (0.1)
    c = deletion_insertion(model, x, attr, 1, steps=4, substitute="zero")
    sig = lambda s: 1 / (1 + np.exp(-4 * s))  # noqa: E731  softmax of (0, 4s), class 1
    remaining = [1.0, 0.6, 0.3, 0.1, 0.0]  # the pixel sum left after deleting the top 0..4 pixels
    inserted = [0.0, 0.4, 0.7, 0.9, 1.0]
    np.testing.assert_allclose(c.fraction, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(c.deletion[0], sig(np.array(remaining)), rtol=1e-6)
    np.testing.assert_allclose(c.insertion[0], sig(np.array(inserted)), rtol=1e-6)
    np.testing.assert_allclose(c.deletion_auc, np.trapezoid(sig(np.array(remaining)), c.fraction), rtol=1e-6)


def test_a_true_ranking_beats_its_reverse():
    model, x = zoo("lenet5")
    model.eval()
    sal = Saliency(model).attribute(x, 5) * x  # input × gradient: a faithful first-order ranking here
    good = deletion_insertion(model, x, sal, 5, steps=16, substitute="zero")
    bad = deletion_insertion(model, x, -sal, 5, steps=16, substitute="zero")
    assert (good.deletion_auc < bad.deletion_auc).all() and (good.insertion_auc > bad.insertion_auc).all()
    # both curves start and end where they must: the original image and the full substitute
    np.testing.assert_allclose(good.deletion[:, 0], good.insertion[:, -1], rtol=1e-6)
    np.testing.assert_allclose(good.deletion[:, -1], good.insertion[:, 0], rtol=1e-6)


def test_substitutes():
    x = torch.rand(2, 3, 9, 9)
    assert torch.equal(substitute_for(x, "zero", 1.0), torch.zeros_like(x))
    torch.testing.assert_close(substitute_for(x, "mean", 1.0)[:, :, 4, 4], x.mean(dim=(2, 3)))
    # the blur keeps a constant image constant and matches scipy's Gaussian filter inside the border
    from scipy.ndimage import gaussian_filter

    torch.testing.assert_close(gaussian_blur(torch.full((1, 1, 9, 9), 0.7), 1.5), torch.full((1, 1, 9, 9), 0.7))
    big = torch.rand(1, 1, 40, 40, dtype=torch.float64)
    ours = gaussian_blur(big, 2.0)[0, 0, 8:-8, 8:-8].numpy()
    theirs = gaussian_filter(big[0, 0].numpy(), 2.0, truncate=3.0)[8:-8, 8:-8]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    with pytest.raises(UserError, match="Unknown substitute"):
        substitute_for(x, "noise", 1.0)


class ImageOnly(Attribution):
    """An 'explanation' that is the image itself, like an edge detector: it ignores the model."""

    def attribute(self, x, target):
        return x.clone()


def test_randomisation_separates_a_model_blind_method_from_saliency():
    model, x = zoo("lenet5")
    model.eval()
    blind = randomization_check(lambda m: ImageOnly(m), model, x, 2)
    assert blind.layers == list(reversed(weighted_layers(model)))
    assert blind.layers[0] == "classifier.fc3"
    np.testing.assert_allclose(blind.spearman_abs, 1.0)
    sal = randomization_check(lambda m: Saliency(m), model, x, 2)
    # Once the whole network is re-drawn, saliency is unrelated to the original map.
    assert abs(sal.spearman_signed[-1]).mean() < 0.3 and sal.spearman_signed[0].mean() < 0.999


def test_spearman_is_scipys_and_handles_constant_maps():
    from scipy.stats import spearmanr

    a, b = torch.rand(3, 1, 5, 5), torch.rand(3, 1, 5, 5)
    expected = [spearmanr(u.flatten(), v.flatten()).statistic for u, v in zip(a, b, strict=True)]
    np.testing.assert_allclose(spearman(a, b), expected)
    assert spearman(torch.zeros(1, 4), torch.rand(1, 4))[0] == 0.0
