"""Feature visualisation: the ascent raises its channel, the pieces compose, the model is left as found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from convscope.errors import UserError
from convscope.explain.featurevis import (
    Objective,
    channel,
    compose,
    jitter,
    l2,
    neuron,
    own_channel_activation,
    pixel_image,
    total_variation,
    visualize,
    visualize_channels,
)
from convscope.models import create_model
from tests.untouched import assert_untouched, snapshot
from tests.usermodels import USER_CONV, USER_INPUT, user_model


def lenet() -> nn.Module:
    torch.manual_seed(0)
    return create_model("lenet5")


def test_each_channel_rises_over_the_ascent():
    model = lenet()
    for layer in ("features.conv1", "features.conv2"):
        vis = visualize_channels(model, layer, steps=20, lr=0.1, transforms=[jitter(1)])
        before = own_channel_activation(model, layer, vis.start_images)
        after = own_channel_activation(model, layer, vis.images)
        assert vis.images.shape[0] == len(after) == (6 if layer.endswith("1") else 16)
        assert np.all(after > before)
        assert vis.final > vis.start and vis.history[-1] > vis.history[0]
        assert 0 < float(vis.images.min()) and float(vis.images.max()) < 1  # sigmoid pixels


def test_the_model_is_left_exactly_as_found():
    model = lenet()
    model.train()
    model.features.conv1.eval()  # mixed modes
    model.classifier.fc1.weight.requires_grad_(False)  # mixed flags
    before = snapshot(model)
    objective = channel("features.conv2", 3) + 0.5 * channel("classifier.fc1", 7)
    objective = objective - 1e-3 * total_variation() - 0.01 * l2()
    vis = visualize(model, objective, pixel_image((2, 1, 28, 28), "cpu", seed=1), [jitter(2)], steps=15)
    assert vis.final > vis.start
    assert_untouched(model, before)


def test_the_model_is_restored_when_the_objective_fails():
    model = lenet()
    before = snapshot(model)
    calls = []

    def fail_on_third(acts, image):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return acts["features.conv1"].mean()

    with pytest.raises(RuntimeError, match="boom"):
        visualize(model, Objective(fail_on_third, ["features.conv1"]), pixel_image((1, 1, 28, 28), "cpu"), steps=10)
    assert_untouched(model, before)


def test_an_inplace_relu_after_the_layer_does_not_change_its_objective():
    def net(inplace: bool) -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=inplace), nn.Conv2d(3, 2, 3))

    runs = [visualize(net(inplace), channel("0", 1), pixel_image((1, 1, 12, 12), "cpu", seed=3), steps=10)
            for inplace in (False, True)]
    torch.testing.assert_close(runs[0].images, runs[1].images)
    assert runs[0].start < 0 or runs[0].history.min() < 0  # negative values seen: a ReLU'd read would differ


def test_objectives_compose_and_know_their_layers():
    acts = {"a": torch.ones(2, 3, 4, 4), "b": torch.arange(6.0).view(2, 3)}
    image = torch.full((2, 1, 4, 4), 0.5)
    obj = 2 * channel("a", 0) - channel("b", 2, batch=1) + 1.0
    assert obj.layers == ("a", "b")
    assert float(obj(acts, image)) == pytest.approx(2 * 1 - 5 + 1)
    assert float(l2()(acts, image)) == 0 and float(total_variation()(acts, image)) == 0
    assert float(sum([channel("a", 0), channel("a", 1)])(acts, image)) == 2
    with pytest.raises(TypeError):
        channel("a", 0) * channel("a", 1)
    grid = {"c": torch.arange(2 * 2 * 25.0).view(2, 2, 5, 5)}
    assert float(neuron("c", 1, batch=0)(grid, image)) == 25 + 12  # the centre (2, 2) of channel 1, image 0
    assert float(neuron("c", 0, x=4, y=0)(grid, image)) == 4 + (50 + 4)  # summed over the batch


def test_transforms_keep_the_size_and_params_follow_the_device():
    x = torch.rand(2, 1, 10, 10)
    assert compose(jitter(2), jitter(1))(x).shape == x.shape
    params, image_fn = pixel_image((1, 1, 5, 5), torch.device("cpu"), sigmoid=False)
    assert params[0].requires_grad and image_fn() is params[0]


def test_a_model_without_input_shape_needs_one():
    model = user_model()
    before = snapshot(model)
    with pytest.raises(UserError, match=r"UserNet has no input_shape.*input_shape=\(C, H, W\)"):
        visualize_channels(model, USER_CONV, steps=2)
    vis = visualize_channels(model, USER_CONV, input_shape=USER_INPUT, steps=2)
    assert vis.images.shape == (8, *USER_INPUT)
    assert_untouched(model, before)


def test_a_float64_model_is_visualised_in_float64():
    """The same ascent as in float32, to float32's precision: the images follow the model's dtype."""
    single = visualize_channels(lenet(), "features.conv1", steps=5, transforms=[jitter(1)])
    model = lenet().double()
    before = snapshot(model)
    double = visualize_channels(model, "features.conv1", steps=5, transforms=[jitter(1)])
    assert double.images.dtype == torch.float64
    torch.testing.assert_close(double.images.float(), single.images, atol=1e-4, rtol=0)
    assert own_channel_activation(model, "features.conv1", double.images).dtype == np.float64
    assert_untouched(model, before)
