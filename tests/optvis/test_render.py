"""Rendering: the known optimum of a linear unit, a layer in one batch equals a loop over its channels,
determinism, the model left as found, and the errors a user can make."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import UserError
from convscope.models import create_model
from convscope.optvis import param
from convscope.optvis.objectives import Objective, alpha_norm, channel, class_logit, diversity, neuron, total_variation
from convscope.optvis.render import objective_values, render, render_channels
from convscope.optvis.transforms import compose, normalize, standard
from tests.untouched import assert_untouched, snapshot
from tests.usermodels import USER_CONV, USER_INPUT, user_model


def lenet() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return create_model("lenet5")


@pytest.mark.parametrize("fft_space", [False, True])
def test_a_linear_units_optimum_under_an_l2_penalty_is_its_weight_vector(fft_space):
    """max_x w·x − λ‖x‖² is reached at x = w / 2λ: the image must come out proportional to the weights.

    The unit is a 3×8×8 convolution with one output position; the FFT and colour decorrelation are linear and
    invertible, so they change the path, not the optimum."""
    conv = nn.Conv2d(3, 1, 8, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
        conv.bias.fill_(3.0)
    model = nn.Sequential(conv)
    before = snapshot(model)
    lam = 2.0
    if fft_space:
        params, raw = param.fft((1, 3, 8, 8), seed=1)
        image_fn = lambda: param.decorrelate_colors(raw())  # noqa: E731
    else:
        params, image_fn = param.pixel((1, 3, 8, 8), seed=1)
    vis = render(model, channel("0", 0) - lam * alpha_norm(2), (params, image_fn), steps=200, lr=0.1)
    w, x = conv.weight.detach().flatten(), vis.images.flatten()
    assert float(F.cosine_similarity(w, x, dim=0)) > 0.99
    torch.testing.assert_close(x, w / (2 * lam), atol=0.02, rtol=0)  # and its length is right
    best = float(w @ w) / (4 * lam) + 3.0  # the objective's maximum, ‖w‖²/4λ + bias
    assert vis.final == pytest.approx(best, rel=1e-3) and vis.start < 3.5
    assert_untouched(model, before)


def test_a_layer_in_one_batch_equals_one_channel_at_a_time():
    """Same seeds, same transformations, independent images: batching changes only the rounding (float64 here)."""
    model = lenet().double()
    channels = [3, 0, 11]
    together = render_channels(model, "features.conv2", channels, steps=12, seed=4)
    for b, c in enumerate(channels):
        alone = render_channels(model, "features.conv2", [c], steps=12, seed=4)
        torch.testing.assert_close(together.images[b:b + 1], alone.images, atol=1e-9, rtol=0)
        assert together.values[b] == pytest.approx(alone.values[0], abs=1e-9)
        assert together.history[:, b] == pytest.approx(alone.history[:, 0], abs=1e-9)
    # the images are not the same image: each channel got its own
    assert float((together.images[0] - together.images[1]).abs().max()) > 0.01


def test_each_channel_rises_and_the_images_follow_the_model():
    model = lenet()
    for unit in (channel, neuron):
        vis = render_channels(model, "features.conv1", unit=unit, steps=30)
        assert vis.images.shape == (6, 1, 28, 28) and vis.values.shape == vis.start_values.shape == (6,)
        assert (vis.values > vis.start_values).all()
        assert vis.history.shape == (30, 6)
        assert 0 < float(vis.images.min()) and float(vis.images.max()) < 1
        torch.testing.assert_close(torch.from_numpy(objective_values(model, unit("features.conv1", list(range(6))),
                                                                     vis.images)), torch.from_numpy(vis.values))
    double = render_channels(lenet().double(), "features.conv1", [2], steps=3)
    assert double.images.dtype == torch.float64


def test_two_runs_are_identical_and_the_seed_matters():
    model = lenet()
    a, b = (render_channels(model, "features.conv2", [1, 2], steps=8, seed=3) for _ in range(2))
    assert torch.equal(a.images, b.images) and (a.history == b.history).all()
    c = render_channels(model, "features.conv2", [1, 2], steps=8, seed=5)
    assert not torch.equal(a.images, c.images)


def test_diversity_pushes_a_batch_apart():
    model = lenet()

    def dissimilarity(weight: float) -> float:
        objective = channel("features.conv2", 5) + weight * diversity("features.relu2")
        vis = render(model, objective, param.image((4, 1, 28, 28)), standard(28, 28), steps=30)
        return float(objective_values(model, diversity("features.relu2"), vis.images).sum())

    # −3 is four images with one Gram matrix (each of the 4·3 pairs has cosine 1, over B = 4)
    alike = dissimilarity(0.0)
    assert alike == pytest.approx(-3, abs=0.01) and dissimilarity(100.0) > alike + 0.2


@pytest.mark.parametrize("mode", ["train", "mixed"])
def test_the_model_is_left_exactly_as_found(mode):
    model = lenet()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        F.cross_entropy(model(torch.rand(4, 1, 28, 28)), torch.arange(4)).backward()  # mid-training: .grad set
    model.classifier.fc1.weight.requires_grad_(False)
    if mode == "mixed":
        model.features.eval()
    before = snapshot(model)
    objective = channel("features.conv2", [3, 4]) + 0.5 * class_logit(7) + diversity("features.conv1")
    objective = objective - 1e-3 * total_variation() - 0.01 * alpha_norm(2, 0.5)
    vis = render(model, objective, param.image((2, 1, 28, 28)), standard(28, 28), steps=15)
    assert vis.final > vis.start
    assert_untouched(model, before)
    with torch.no_grad():  # a caller's autograd mode is restored too
        render_channels(model, "features.conv1", [0], steps=2)
    assert_untouched(model, before)


def test_the_model_is_restored_when_the_objective_fails():
    model = lenet()
    before = snapshot(model)
    calls = []

    def fail_on_third(acts, image):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return acts["features.conv1"].flatten(1).mean(1)

    with pytest.raises(RuntimeError, match="boom"):
        render(model, Objective(fail_on_third, ["features.conv1"]), param.image((1, 1, 28, 28)), steps=10)
    assert_untouched(model, before)


def test_an_inplace_relu_after_the_layer_does_not_change_its_objective():
    def net(inplace: bool) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=inplace), nn.Conv2d(3, 2, 3))

    runs = [render(net(inplace), channel("0", 1), param.pixel((1, 1, 12, 12), seed=3), steps=10)
            for inplace in (False, True)]
    torch.testing.assert_close(runs[0].images, runs[1].images)
    assert runs[0].start < 0  # negative values seen: a ReLU'd read would differ


def test_a_users_rgb_model_with_its_normalisation():
    model = user_model()
    before = snapshot(model)
    vis = render_channels(model, USER_CONV, [0, 5], input_shape=USER_INPUT, steps=10,
                          transforms=compose(standard(32, 32), normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])))
    assert vis.images.shape == (2, *USER_INPUT) and (vis.values > vis.start_values).all()
    assert_untouched(model, before)


def test_normalising_the_input_equals_folding_the_normalisation_into_the_first_conv():
    """conv((x − m)/s) is a conv of x with weights W/s and bias b − Σ W·m/s (no padding): the same images."""
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.5])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        raw = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)).double()
    folded = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)).double()
    folded.load_state_dict(raw.state_dict())
    with torch.no_grad():
        w = raw[0].weight / std.double().view(1, 3, 1, 1)
        folded[0].weight.copy_(w)
        folded[0].bias.sub_((w * mean.double().view(1, 3, 1, 1)).sum((1, 2, 3)))
    runs = [render_channels(m, "2", [0, 1], input_shape=(3, 12, 12), steps=10, transforms=t)
            for m, t in ((raw, compose(standard(12, 12), normalize(mean.tolist(), std.tolist()))),
                         (folded, standard(12, 12)))]
    torch.testing.assert_close(runs[0].images, runs[1].images, atol=1e-9, rtol=0)
    assert float((runs[0].images - runs[0].start_images).abs().max()) > 0.05  # the images did move


def test_user_errors_name_the_valid_choices():
    model = lenet()
    before = snapshot(model)
    with pytest.raises(UserError, match=r"Unknown layer 'features\.conv9': did you mean .*'features\.conv1'"):
        render_channels(model, "features.conv9", steps=2)
    with pytest.raises(UserError, match=r"'features\.conv1' has 6 channels and channel 6 is out of range: choose "
                                        r"channels among 0\.\.5\."):
        render_channels(model, "features.conv1", [0, 6], steps=2)
    with pytest.raises(UserError, match="channel -1 is out of range"):
        render_channels(model, "features.conv1", [-1], steps=2)
    with pytest.raises(UserError, match="no channels were given"):
        render_channels(model, "features.conv1", [], steps=2)
    for steps in (0, -3, 2.5, True):
        with pytest.raises(UserError, match=r"steps must be a positive whole number, got .*: use e\.g\. 128"):
            render_channels(model, "features.conv1", steps=steps)
    with pytest.raises(UserError, match="lr must be a positive number"):
        render(model, channel("features.conv1", 0), param.image((1, 1, 28, 28)), steps=2, lr=0)
    with pytest.raises(UserError, match=r"Unknown layer 'conv1': choose one of .*features\.conv1, features\.conv2"):
        render(model, channel("conv1", 0), param.image((1, 1, 28, 28)), steps=2)
    with pytest.raises(UserError, match=r"UserNet has no input_shape.*input_shape=\(C, H, W\)"):
        render_channels(user_model(), USER_CONV, steps=2)
    assert_untouched(model, before)
