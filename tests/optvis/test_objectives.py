"""Objectives: the algebra, one value per image, and each objective against a value worked out by hand."""

from __future__ import annotations

import sys

import pytest
import torch

from convscope.optvis.objectives import (
    OUTPUT,
    Objective,
    alpha_norm,
    blur,
    blur_penalty,
    channel,
    class_logit,
    direction,
    diversity,
    l2,
    neuron,
    total_variation,
)

IMAGE = torch.full((2, 1, 4, 4), 0.5)


def acts() -> dict[str, torch.Tensor]:
    return {"a": torch.ones(2, 3, 4, 4), "b": torch.arange(6.0).view(2, 3),
            "c": torch.arange(2 * 2 * 25.0).view(2, 2, 5, 5)}


def test_objectives_add_scale_multiply_and_know_their_layers():
    a = acts()
    obj = 2 * channel("a", 0) - channel("b", 2, batch=1) + 1.0
    assert obj.layers == ("a", "b")
    # image 0: 2·1 − 0 + 1; image 1: 2·1 − 5 + 1 (channel 2 of "b" is [2, 5]; batch=1 keeps image 1 only)
    assert obj(a, IMAGE).tolist() == [3.0, -2.0]
    prod = channel("b", 1) * channel("b", 2)  # image by image: [1·2, 4·5]
    assert prod(a, IMAGE).tolist() == [2.0, 20.0] and prod.layers == ("b",)
    assert (channel("b", 1) / 4)(a, IMAGE).tolist() == [0.25, 1.0]
    assert (1 - channel("b", 0))(a, IMAGE).tolist() == [1.0, -2.0]
    assert sum([channel("b", 0), channel("b", 1)])(a, IMAGE).tolist() == [1.0, 7.0]
    with pytest.raises(TypeError, match="objective or a number"):
        channel("a", 0) * "2"
    with pytest.raises(TypeError):
        channel("a", 0) + torch.ones(2)


def test_the_sum_of_many_objectives_does_not_recurse():
    terms = [channel("b", k % 3, batch=k % 2) for k in range(3 * sys.getrecursionlimit())]
    total = Objective.sum(terms)
    # each image gets half the terms; channel k % 3 of image k % 2 cycles through all six (image, channel) pairs
    n = len(terms) // 6
    assert total(acts(), IMAGE).tolist() == [n * (0 + 1 + 2), n * (3 + 4 + 5)]
    assert total.layers == ("b",)
    with pytest.raises(ValueError, match="at least one"):
        Objective.sum([])


def test_one_channel_per_image_and_units():
    a = acts()
    assert channel("c", [1, 0])(a, IMAGE).tolist() == [25 + 12, 50 + 12]  # means of two 5×5 ramps
    assert neuron("c", 1, batch=0)(a, IMAGE).tolist() == [25 + 12, 0]  # centre (2, 2) of channel 1, image 0
    assert neuron("c", 0, x=4, y=0)(a, IMAGE).tolist() == [4, 50 + 4]
    assert neuron("c", [1, 0], x=0, y=1)(a, IMAGE).tolist() == [25 + 5, 50 + 5]
    logits = {OUTPUT: torch.tensor([[1.0, 7.0], [3.0, -2.0]])}
    assert class_logit(1)(logits, IMAGE).tolist() == [7.0, -2.0] and class_logit(0).layers == ("",)
    with pytest.raises(ValueError, match="one channel per image"):
        channel("c", [0, 1, 0])(a, IMAGE)


def test_direction_is_the_projection_on_the_unit_vector():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 3, 2, 2, generator=g)
    v = torch.tensor([3.0, 0.0, 4.0])
    expected = [sum(float(a[b, 0, i, j] * 0.6 + a[b, 2, i, j] * 0.8) for i in range(2) for j in range(2)) / 4
                for b in range(2)]
    torch.testing.assert_close(direction("x", v)({"x": a}, IMAGE), torch.tensor(expected))
    # one direction per image; on a (B, C) layer, one position
    flat = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    per_image = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert direction("f", per_image)({"f": flat}, IMAGE).tolist() == [1.0, 4.0]
    # cos^p favours activations along v: with a = v the factor is 1
    along = torch.tensor([[3.0, 0.0, 4.0]])
    assert direction("f", v, cossim_pow=2)({"f": along}, IMAGE).tolist() == pytest.approx([5.0])


def test_diversity_is_lucents_gram_dissimilarity():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 4, 5, 5, generator=g)
    # lucent/optvis/objectives.py `diversity`, written out with loops
    grams = []
    for b in range(3):
        f = a[b].reshape(4, -1)
        gram = f @ f.T
        grams.append(gram / gram.norm())
    lucent = -sum(float((grams[i] * grams[j]).sum()) for i in range(3) for j in range(3) if j != i) / 3
    values = diversity("x")({"x": a}, IMAGE)
    assert values.shape == (3,)
    assert float(values.sum()) == pytest.approx(lucent, rel=1e-5)
    assert float(diversity("x")({"x": a[:1]}, IMAGE)) == 0  # one image has nothing to differ from


def test_regularisers_by_hand():
    x = torch.zeros(2, 1, 3, 3)
    x[1, 0, 1, 1] = 1.0  # a single bright pixel in the middle of image 1
    # TV: at (0,1) dx = 1; at (1,0) dy = 1; at (1,1) dx = dy = −1 → 1 + 1 + 2^(β/2)
    assert total_variation(2)({}, x).tolist() == [0.0, 4.0]
    assert total_variation(1)({}, x).tolist() == pytest.approx([0.0, 2 + 2**0.5])
    assert alpha_norm(6)({}, x).tolist() == [0.0, 1.0]
    assert alpha_norm(2, constant=0.5)({}, x).tolist() == [9 * 0.25, 8 * 0.25 + 0.25]
    assert l2(0.0)({}, x).tolist() == [0.0, 1.0]
    flat = torch.full((1, 2, 4, 4), 0.3)
    torch.testing.assert_close(blur(flat), flat)  # the border normalisation keeps a flat image flat
    assert float(blur_penalty()({}, flat)) == pytest.approx(0.0, abs=1e-12)
    # the middle pixel of image 1 spreads to its 8 neighbours at weight ½ each: blurred centre = 1 / (1 + 8·½)
    assert float(blur(x)[1, 0, 1, 1]) == pytest.approx(1 / 5)
