"""Inversion (Mahendran and Vedaldi 2015) against hand-checkable cases: an identity 1×1 convolution is inverted
exactly, a linear map with a null space gives back the part of the image in its row space and keeps the start's
null-space part; the error falls with steps; a seed fixes the result; layers batched equal layers alone; the model
is left as found; bad arguments are UserErrors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.errors import UserError
from convscope.models import create_model
from convscope.optvis.inversion import invert, invert_layers, lr_schedule
from tests.untouched import assert_untouched, snapshot


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: two intra-op threads on a busy 2-core CPU only wait on each other (many times slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


EXACT = {"lambda_alpha": 0.0, "lambda_tv": 0.0, "jitter": 0, "lr": 0.5}  # the data term alone, a quick rate


def _conv1x1(weight: list[list[float]]) -> nn.Module:
    w = torch.tensor(weight)
    conv = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(w[:, :, None, None])
    return nn.Sequential(conv)


def _images(b: int = 3, c: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, 12, 12, generator=torch.Generator().manual_seed(seed))


def test_an_identity_layer_is_inverted_exactly():
    x = _images()
    inv = invert(_conv1x1([[1.0]]), x, "0", steps=400, **EXACT)
    assert inv.errors.max() < 1e-3 and inv.start_errors.min() > 0.1
    torch.testing.assert_close(inv.images, x, atol=1e-3, rtol=0)


def test_a_map_with_a_null_space_recovers_the_row_space_part_and_keeps_the_start_in_the_null_space():
    # Φ(x) = x₀ + x₁ per pixel: the row space is (1, 1)/√2, the null space (1, −1)/√2
    x = _images(c=2)
    inv = invert(_conv1x1([[1.0, 1.0]]), x, "0", steps=400, **EXACT)
    row = lambda t: t[:, 0] + t[:, 1]  # noqa: E731
    null = lambda t: t[:, 0] - t[:, 1]  # noqa: E731
    torch.testing.assert_close(row(inv.images), row(x), atol=1e-3, rtol=0)
    torch.testing.assert_close(null(inv.images), null(inv.start_images), atol=1e-5, rtol=0)
    assert (null(inv.images) - null(x)).abs().mean() > 0.1  # what the code does not keep is not recovered


def test_the_schedule_is_the_reference_codes():
    assert [lr_schedule(s, 400) for s in (0, 99, 100, 299, 300, 399)] == [1, 1, 0.1, 0.1, 0.01, 0.01]


def test_the_error_falls_with_steps_and_a_seed_fixes_the_result():
    torch.manual_seed(0)
    model = create_model("lenet5").eval()
    x = _images(2, seed=1)
    x = nn.functional.pad(x, (8, 8, 8, 8))  # (2, 1, 28, 28)
    short = invert(model, x, "features.pool1", steps=10)
    long = invert(model, x, "features.pool1", steps=150)
    assert long.error < short.error < short.start_errors.mean()
    again = invert(model, x, "features.pool1", steps=10)
    assert torch.equal(short.images, again.images)
    other = invert(model, x, "features.pool1", steps=10, seed=1)
    assert not torch.equal(short.images, other.images)


def test_layers_batched_equal_layers_alone_and_the_model_is_left_as_found():
    torch.manual_seed(0)
    model = create_model("lenet5")  # left in train mode: inversion runs in eval mode and restores it
    x = nn.functional.pad(_images(2), (8, 8, 8, 8))
    before = snapshot(model)
    both = invert_layers(model, x, ["features.conv1", "classifier.fc3"], steps=20, lambda_tv=[0.01, 0.1], jitter=1)
    assert_untouched(model, before)
    alone = invert(model, x, "classifier.fc3", steps=20, lambda_tv=0.1, jitter=1)
    torch.testing.assert_close(both["classifier.fc3"].images, alone.images, atol=1e-5, rtol=1e-4)
    assert both["features.conv1"].history.shape == (20, 2)


def test_the_device_and_dtype_are_the_models():
    model = _conv1x1([[2.0]]).double()
    inv = invert(model, _images(1), "0", steps=5)
    assert inv.images.dtype == torch.float64


@pytest.mark.parametrize("kwargs, match", [
    ({"layer": "features.conv9"}, "Unknown layer 'features.conv9'"),
    ({"steps": 0}, "steps must be a positive whole number"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"lambda_tv": [0.1, 0.2]}, "2 values of lambda_tv for 1 layers"),
    ({"value_range": (1.0, 0.0)}, "value_range"),
])
def test_bad_arguments_are_user_errors(kwargs, match):
    model = create_model("lenet5")
    args = {"layer": "features.conv1", "steps": 2, **kwargs}
    with pytest.raises(UserError, match=match):
        invert(model, torch.rand(1, 1, 28, 28), **args)


def test_a_run_divergent_at_every_rate_says_to_lower_the_learning_rate():
    with pytest.raises(UserError, match=r"diverged \(pixels became infinite\) at lr=10000 and at 3 smaller rates"):
        invert(_conv1x1([[1.0]]), _images(), "0", steps=50, **{**EXACT, "lr": 1e4})


def test_a_layer_that_diverges_runs_again_at_a_fifth_of_the_rate_and_the_others_keep_theirs():
    """By hand, with the data term alone: a step moves the image by k (x' − x) with k = lr·h·w·B²·2/‖Φ₀‖² (B = ½
    the pixel range), and heavy-ball momentum 0.9 is stable while k < 2(1 + 0.9) = 3.8. Uniform images: for the
    identity layer ‖Φ₀‖² ≈ 144/3, k ≈ 1.5·lr; for x − ½ (a conv with bias −½) ‖Φ₀‖² ≈ 144/12, k ≈ 6·lr. At lr = 1
    the first converges and the second diverges; at 0.2 the second converges."""
    first, second = nn.Conv2d(1, 1, 1, bias=False), nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        first.weight.fill_(1.0)
        second.weight.fill_(1.0)
        second.bias.fill_(-0.5)
    x = _images()
    out = invert_layers(nn.Sequential(first, second), x, ["0", "1"], steps=400, **{**EXACT, "lr": 1.0})
    assert (out["0"].lr, out["1"].lr) == (1.0, pytest.approx(0.2))
    for n in ("0", "1"):
        torch.testing.assert_close(out[n].images, x, atol=1e-3, rtol=0)
