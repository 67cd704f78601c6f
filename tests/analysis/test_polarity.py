"""Polarity swaps and anchor correlations (convscope.analysis.polarity), against direct oracles."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.analysis.polarity import (
    PolaritySwappedConv,
    anchor_vectors,
    exact_polarity_swap,
    first_conv,
    negate_conv,
    patch_correlations,
    polarity_accuracy,
    swap_mismatches,
)
from convscope.data.transforms import invert
from convscope.errors import UserError
from convscope.models import create_model
from tests.untouched import assert_untouched, snapshot


@torch.no_grad()
def test_exact_swap_of_a_trained_lenet_swaps_logits_and_predictions_image_by_image(small_trained, mnist_small):
    _, (x, y) = mnist_small
    model = small_trained
    before = snapshot(model)
    swapped = exact_polarity_swap(model)
    assert isinstance(swapped.features.conv1, PolaritySwappedConv) and type(model.features.conv1) is nn.Conv2d
    model.eval(), swapped.eval()
    torch.testing.assert_close(swapped(invert(x)), model(x), atol=1e-4, rtol=0)
    torch.testing.assert_close(swapped(x), model(invert(x)), atol=1e-4, rtol=0)
    assert torch.equal(swapped(invert(x)).argmax(1), model(x).argmax(1))
    model.train()  # as the fixture left it
    report = swap_mismatches(model, swapped, x)
    assert report["mismatches"] == 0 and report["max_logit_diff"] < 1e-4
    acc, acc_inv = polarity_accuracy(model, x, y)
    assert acc > 0.6 and acc_inv < acc  # it learned something, and inversion hurts it
    assert polarity_accuracy(swapped, x, y) == (acc_inv, acc)  # the two accuracies swap exactly
    assert_untouched(model, before)


@torch.no_grad()
def test_the_articles_weight_negation_is_not_an_exact_swap(small_trained, mnist_small):
    _, (x, _) = mnist_small
    model = small_trained
    before = snapshot(model)
    negated = negate_conv(model)
    torch.testing.assert_close(negated.features.conv1.weight, -model.features.conv1.weight)
    torch.testing.assert_close(negated.features.conv1.bias, model.features.conv1.bias)
    assert swap_mismatches(model, negated, x)["mismatches"] > 0
    # Oracle: inside the image, negated conv1 on 1 − x is the original conv1 on x minus ΣW per filter;
    # on the zero-padded border it is not.
    conv, neg = model.features.conv1, negated.features.conv1
    diff = neg(invert(x)) - conv(x)  # (B, 6, 28, 28)
    sum_w = conv.weight.sum(dim=(1, 2, 3)).view(1, -1, 1, 1)
    torch.testing.assert_close(diff[:, :, 2:-2, 2:-2], (-sum_w).expand_as(diff[:, :, 2:-2, 2:-2]),
                               atol=1e-5, rtol=0)
    assert (diff[:, :, 0] + sum_w[:, :, 0]).abs().max() > 1e-3
    assert_untouched(model, before)


@pytest.mark.parametrize("kwargs", [
    {"padding": 2}, {"padding": 0}, {"padding": (1, 2)}, {"padding": "same"}, {"padding": "valid"},
    {"padding": 1, "stride": 2}, {"padding": 2, "dilation": 2}, {"padding": 1, "bias": False},
    {"padding": 1, "groups": 3},
])
@pytest.mark.parametrize("peak", [1.0, 255.0])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@torch.no_grad()
def test_exact_swap_for_any_padding_stride_and_peak(kwargs, peak):
    torch.manual_seed(0)
    channels = 3 if kwargs.get("groups") else 2
    model = nn.Sequential(nn.Conv2d(channels, 6, 4, **kwargs), nn.ReLU(), nn.Flatten())
    x = torch.rand(3, channels, 11, 13, dtype=torch.float64) * peak
    model = model.double()
    swapped = exact_polarity_swap(model, peak=peak)
    torch.testing.assert_close(swapped(peak - x), model(x), atol=1e-9 * peak, rtol=0)
    torch.testing.assert_close(swapped(x), model(peak - x), atol=1e-9 * peak, rtol=0)


def test_swap_refuses_what_it_cannot_swap_exactly():
    with pytest.raises(UserError, match="zero-padded"):
        exact_polarity_swap(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")))
    with pytest.raises(UserError, match="no nn.Conv2d"):
        first_conv(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(UserError, match="not an nn.Conv2d"):
        exact_polarity_swap(create_model("lenet5"), "features.pool1")
    assert first_conv(create_model("lenet5")) == "features.conv1"


def test_anchor_vectors_are_the_unit_filters():
    w = torch.randn(6, 1, 5, 5)
    a = anchor_vectors(w)
    assert a.shape == (6, 25)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(a * w.flatten(1).norm(dim=1, keepdim=True), w.flatten(1))


@torch.no_grad()
def test_raw_correlations_are_the_convolution_over_the_norms(mnist_small):
    _, (x, _) = mnist_small
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 6, 5, padding=2).double()
    x = x[:8].double()
    corr = patch_correlations(conv, x)  # (8, 576, 6)
    assert corr.shape == (8, 24 * 24, 6)
    valid = torch.isfinite(corr)
    assert (corr[valid].abs() <= 1).all()
    assert (~valid).any()  # blank background patches have no direction
    # Oracle: corr·‖patch‖ = conv(x, W, no bias, no padding) / ‖W‖, position by position.
    norms = F.unfold(x, 5).norm(dim=1)  # (8, 576)
    ref = F.conv2d(x, conv.weight) / conv.weight.flatten(1).norm(dim=1).view(1, -1, 1, 1)  # (8, 6, 24, 24)
    ref = ref.flatten(2).transpose(1, 2)  # (8, 576, 6)
    torch.testing.assert_close(torch.where(valid, corr * norms.unsqueeze(-1), ref), ref)


@torch.no_grad()
def test_inversion_flips_centred_correlations_exactly_and_raw_ones_up_to_the_weight_sum(mnist_small):
    _, (x, _) = mnist_small
    torch.manual_seed(1)
    conv = nn.Conv2d(1, 6, 5).double()
    x = x[:8].double()
    centred, centred_inv = patch_correlations(conv, x, centered=True), patch_correlations(conv, invert(x), True)
    assert torch.equal(torch.isnan(centred), torch.isnan(centred_inv))  # the same flat patches
    valid = torch.isfinite(centred)
    torch.testing.assert_close(centred_inv[valid], -centred[valid], atol=1e-12, rtol=0)
    # Raw cosines: ‖1 − p‖·corr(1 − p) + ‖p‖·corr(p) = Σ a_k, the sum of the unit anchor's entries.
    raw, raw_inv = patch_correlations(conv, x), patch_correlations(conv, invert(x))
    n, n_inv = F.unfold(x, 5).norm(dim=1).unsqueeze(-1), F.unfold(invert(x), 5).norm(dim=1).unsqueeze(-1)
    total = torch.nan_to_num(raw * n) + raw_inv * n_inv  # (8, 576, 6)
    torch.testing.assert_close(total, anchor_vectors(conv.weight).sum(dim=1).expand_as(total), atol=1e-9, rtol=0)
    assert not torch.allclose(torch.nan_to_num(raw_inv), -torch.nan_to_num(raw))  # the raw flip is not exact


def test_every_analysis_leaves_the_model_as_it_found_it(small_trained, mnist_small):
    _, (x, y) = mnist_small
    model = small_trained
    before = snapshot(model)
    negate_conv(model)
    swapped = exact_polarity_swap(model)
    swap_mismatches(model, swapped, x[:20])
    polarity_accuracy(model, x[:20], y[:20])
    patch_correlations(model.features.conv1, x[:4], centered=True)
    assert_untouched(model, before)
    assert model.training and model.features.conv1.weight.requires_grad


@torch.no_grad()
def test_near_ties_are_rechecked_in_float64_and_not_counted_as_mismatches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 8 * 8, 3))
    model[3].weight[1] = model[3].weight[0]  # classes 0 and 1 tie on every input
    model[3].bias[1] = model[3].bias[0]
    model[3].bias[2] = -100.0  # class 2 never wins
    x = torch.rand(10, 1, 8, 8)
    report = swap_mismatches(model, exact_polarity_swap(model), x)
    assert report["rechecked"] == 20 and report["mismatches"] == 0
