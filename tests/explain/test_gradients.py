"""Saliency, input × gradient, integrated gradients and SmoothGrad/VarGrad against Captum 0.9, autograd and
the completeness axiom."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch

from convscope.errors import UserError
from convscope.explain.gradients import (
    QUADRATURES,
    InputXGradient,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
    completeness_gap,
    quadrature,
)
from tests.explain.conftest import zoo

TARGETS = {"lenet5": [1, 2, 3], "alexnet": [4, 7], "vgg16": [0, 9], "user": [1, 5, 8]}


def test_saliency_and_input_x_gradient_equal_captum(captum_case):
    name, model, x = captum_case
    t = torch.tensor(TARGETS[name])
    for abs_ in (False, True):
        ours = Saliency(model).attribute(x, t, abs=abs_)
        torch.testing.assert_close(ours, ca.Saliency(model).attribute(x, target=t, abs=abs_), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(InputXGradient(model).attribute(x, t),
                               ca.InputXGradient(model).attribute(x, target=t), atol=1e-5, rtol=1e-5)


def test_saliency_is_the_autograd_gradient_of_the_target_logit():
    model, x = zoo("user-functional")
    model.eval()
    xr = x.clone().requires_grad_(True)
    model(xr)[torch.arange(3), torch.tensor([0, 4, 9])].sum().backward()
    torch.testing.assert_close(Saliency(model).attribute(x, [0, 4, 9]), xr.grad)
    for p in model.parameters():  # the oracle's own backward filled these; clear them for the other tests
        p.grad = None


@pytest.mark.parametrize("method", QUADRATURES)
def test_integrated_gradients_equal_captum_for_every_quadrature(method):
    model, x = zoo("lenet5")
    model.eval()
    baseline = torch.full_like(x, 0.1)
    ours = IntegratedGradients(model).attribute(x, 7, baseline=baseline, steps=12, method=method)
    theirs = ca.IntegratedGradients(model).attribute(x, baselines=baseline, target=7, n_steps=12, method=method)
    if method == "riemann_trapezoid":  # Captum's trapezoid weights sum to 1 − 1/n instead of 1
        theirs = theirs * 12 / 11
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_captums_trapezoid_misses_completeness_and_ours_does_not():
    # On a linear model the gradient is constant along the path, so every correct quadrature is exact:
    # Σ IG = y(x) − y(0) to rounding. Captum's trapezoid falls short by exactly 1/n of it.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).double()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        expected = (model(x) - model(torch.zeros_like(x)))[:, 1]
    ours = IntegratedGradients(model).attribute(x, 1, steps=5, method="riemann_trapezoid").flatten(1).sum(1)
    theirs = ca.IntegratedGradients(model).attribute(x, target=1, n_steps=5, method="riemann_trapezoid")
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(theirs.flatten(1).sum(1), expected * 4 / 5)


def test_integrated_gradients_equal_captum_on_bigger_models(captum_case):
    name, model, x = captum_case
    t = torch.tensor(TARGETS[name])
    ours = IntegratedGradients(model).attribute(x, t, steps=8)
    theirs = ca.IntegratedGradients(model).attribute(x, target=t, n_steps=8)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_internal_batching_does_not_change_integrated_gradients():
    model, x = zoo("user")
    model.eval()
    ig = IntegratedGradients(model)
    whole = ig.attribute(x, 2, steps=10, method="riemann_middle")
    for size in (1, 4, 7):  # path points per pass: 1, 1 and 2 (with 3 examples)
        torch.testing.assert_close(ig.attribute(x, 2, steps=10, method="riemann_middle", internal_batch_size=size),
                                   whole, atol=1e-6, rtol=1e-5)


def test_completeness_holds_as_the_quadrature_refines():
    # Integrated gradients' completeness axiom: Σ attributions = y(x) − y(baseline). A smooth network
    # (tanh LeNet-5 with average pooling: max pooling has kinks) in float64 makes the Gauss–Legendre
    # error shrink fast with the number of steps.
    torch.manual_seed(1)
    from convscope.models import create_model

    model = create_model("lenet5", activation="tanh", pool="avg").double().eval()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    gaps = [completeness_gap(model, x, IntegratedGradients(model).attribute(x, 3, steps=s), 3).abs().max().item()
            for s in (2, 4, 16)]
    assert gaps[2] < 1e-12 < gaps[0] and gaps[2] < gaps[1] < gaps[0]


def test_quadrature_rules_integrate_polynomials():
    # Oracle: ∫₀¹ α² dα = 1/3. Gauss–Legendre with 2 points is exact for cubics; trapezoid's error is 1/(6 n²).
    for method in QUADRATURES:
        a, w = quadrature(method, 40)
        assert abs(w.sum() - 1) < 1e-12 and 0 <= a.min() and a.max() <= 1
    a, w = quadrature("gausslegendre", 2)
    assert abs((w * a**3).sum() - 0.25) < 1e-12
    a, w = quadrature("riemann_trapezoid", 11)  # 10 intervals: error h²/6 = 1/600
    assert abs((w * a**2).sum() - 1 / 3 - 1 / (6 * 10**2)) < 1e-12
    with pytest.raises(UserError, match="steps must be at least 2"):
        quadrature("riemann_left", 1)
    with pytest.raises(UserError, match="Unknown integration method"):
        quadrature("simpson", 10)


@pytest.mark.parametrize("kind", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_smoothgrad_equals_captums_noise_tunnel_with_the_same_noise(kind):
    # Captum draws its noise from the global generator; seeding it and ours alike gives the same draws.
    model, x = zoo("user")
    model.eval()
    t = torch.tensor([3, 1, 4])
    rng = torch.get_rng_state()
    torch.manual_seed(11)
    theirs = ca.NoiseTunnel(ca.Saliency(model)).attribute(x, target=t, nt_samples=6, stdevs=0.2, nt_type=kind,
                                                          abs=False)
    torch.set_rng_state(rng)
    ours = SmoothGrad(Saliency(model), n=6, sigma=0.2, absolute_sigma=True, kind=kind, seed=11).attribute(x, t)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-4)


def test_smoothgrad_batches_alike_leaves_the_global_rng_and_reduces_to_its_method():
    model, x = zoo("lenet5")
    model.eval()
    rng = torch.get_rng_state()
    sal = Saliency(model).attribute(x, 5)
    torch.testing.assert_close(SmoothGrad(Saliency(model), n=3, sigma=0.0).attribute(x, 5), sal)
    a = SmoothGrad(Saliency(model), n=8, sigma=0.1, seed=3).attribute(x, 5)
    b = SmoothGrad(Saliency(model), n=8, sigma=0.1, seed=3).attribute(x, 5)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, sal)
    assert torch.equal(torch.get_rng_state(), rng)


def test_smoothgrad_sigma_is_a_fraction_of_each_examples_range():
    # A linear model's input gradient does not depend on the noise; the noise itself, seen through
    # input × gradient on the identity-like map, has the spread that was asked for.
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[1].weight.fill_(1.0)
    x = torch.stack([torch.linspace(0, 1, 4), torch.linspace(0, 10, 4)]).view(2, 1, 2, 2)
    sq = SmoothGrad(InputXGradient(model), n=4000, sigma=0.1, kind="vargrad", seed=0).attribute(x, 0)
    # Var[(x + ε)·1] = σ², with σ = 0.1 × range: 0.1 and 1.0
    assert torch.allclose(sq[0].mean(), torch.tensor(0.01), rtol=0.1)
    assert torch.allclose(sq[1].mean(), torch.tensor(1.0), rtol=0.1)


def test_bad_arguments_are_one_sentence():
    model, x = zoo("lenet5")
    with pytest.raises(UserError, match="n ≥ 1"):
        SmoothGrad(Saliency(model), n=0)
    with pytest.raises(UserError, match="Unknown SmoothGrad kind"):
        SmoothGrad(Saliency(model), kind="median")
    with pytest.raises(UserError, match="baseline has shape"):
        IntegratedGradients(model).attribute(x, 1, baseline=torch.zeros(2, 2))


@pytest.mark.parametrize("kind", ["smoothgrad", "vargrad"])
def test_smoothgrad_batching_changes_how_copies_run_not_their_noise(kind):
    model, x = zoo("lenet5")
    model.eval()
    whole = SmoothGrad(Saliency(model), n=7, sigma=0.1, kind=kind, batch=7, seed=5).attribute(x, 5)
    for batch in (1, 3, None):
        torch.testing.assert_close(
            SmoothGrad(Saliency(model), n=7, sigma=0.1, kind=kind, batch=batch, seed=5).attribute(x, 5), whole)
