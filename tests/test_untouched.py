"""The "model left exactly as found" contract (docs/DESIGN.md), once, for every instrument that takes a model.

Every instrument × a zoo model and a user's model (tests/usermodels.py: BatchNorm, `ReLU(inplace=True)`, a ReLU
module run twice, `F.relu`, dropout, 3×32×32) × the model in train mode, in eval mode, and in mixed modes (train
with BatchNorm or the classifier frozen in eval). The model comes in mid-training, with gradients on its
parameters and one parameter frozen. After the call, whether it returned or raised, parameters and buffers are
bit-identical, each module has its own mode, `requires_grad` and `.grad` are as they were, no hook of any kind is
left, and the global autograd mode and random state are unchanged (tests/untouched.py).

Where an instrument cannot handle a model it must say so with a `UserError`, never return a wrong answer: the
`refuses` column names those cases and the sentence expected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.analysis.clustering import layer_clustering, representation_layers
from convscope.analysis.evolution import feature_evolution
from convscope.analysis.invariance import hflip, invariance_scores
from convscope.analysis.linearity import affine_map, max_affine_error
from convscope.analysis.pairing import pairing_by_layer
from convscope.analysis.polarity import (
    exact_polarity_swap,
    negate_conv,
    patch_correlations,
    polarity_accuracy,
    swap_mismatches,
)
from convscope.analysis.pooling import edge_maps
from convscope.analysis.reconstruction import crelu_features, reconstruct
from convscope.analysis.topk import receptive_box, top_examples
from convscope.errors import UserError
from convscope.explain.occlusion_maps import occlusion_maps
from convscope.hooks import activations, conv_layers, eval_mode, get_layer, record
from convscope.models import create_model
from convscope.models.summary import summarize
from convscope.optvis import objective_values, param, render, render_channels
from convscope.optvis.objectives import channel, class_logit, diversity, total_variation
from convscope.optvis.transforms import standard
from convscope.train.loop import evaluate
from convscope.train.run import write_atlas_inputs
from tests.untouched import assert_untouched, snapshot
from tests.usermodels import USER_CONV, USER_FC, USER_INPUT, USER_REUSED, user_model


@dataclass
class Case:
    """A model and what the instruments need to know about it."""

    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]
    conv: str  # its first convolution
    fc: str  # a fully connected layer: (N, C) outputs
    reused: str | None  # a module that runs twice per forward pass
    mixed: Callable[[nn.Module], None]  # freezes part of a train-mode model in eval mode
    small_shape: tuple[int, int, int]  # the smallest input it takes: affine_map makes one pass per input element
    x: torch.Tensor = None  # type: ignore[assignment]
    y: torch.Tensor = None  # type: ignore[assignment]
    tmp: Path = None  # type: ignore[assignment]


def _lenet() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return create_model("lenet5")


def _freeze_batchnorm(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


CASES = {
    "lenet5": Case("lenet5", _lenet, (1, 28, 28), "features.conv1", "classifier.fc1", None,
                   lambda m: m.classifier.eval(), (1, 28, 28)),
    "user": Case("user", user_model, USER_INPUT, USER_CONV, USER_FC, USER_REUSED, _freeze_batchnorm, (3, 8, 8)),
}
MODES = ("train", "eval", "mixed")


def _record(model: nn.Module, c: Case, layer: str) -> dict[str, torch.Tensor]:
    with record(model, [layer]) as acts, torch.no_grad(), eval_mode(model):
        model(c.x)
    return dict(acts)


def _clustering(model: nn.Module, c: Case) -> Any:
    names = representation_layers(model, c.x)
    return layer_clustering({"input": c.x, **activations(model, c.x, names)}, c.y, k=1)


def _exact_swap(model: nn.Module, c: Case) -> dict[str, float]:
    report = swap_mismatches(model, exact_polarity_swap(model), c.x)
    assert report["mismatches"] == 0  # and the answer is right: swapped(1 − x) predicts as model(x)
    return report


def _evolution(model: nn.Module, c: Case) -> Any:
    # two "epochs": the model's own weights and a perturbed copy; the instrument loads each into a copy
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    other = {k: v + 0.01 if v.is_floating_point() else v for k, v in own.items()}
    return feature_evolution(model, {1: own, 2: other}, c.x, [c.conv], channels=2, k=2)


def _max_affine_error(model: nn.Module, c: Case) -> float:
    A, b = affine_map(model, c.small_shape, check=False)
    return max_affine_error(model, A, b, torch.rand(3, *c.small_shape, generator=torch.Generator().manual_seed(0)))


# name -> (call, {case name: the UserError message expected, for the cases the instrument refuses})
INSTRUMENTS: dict[str, tuple[Callable[[nn.Module, Case], Any], dict[str, str]]] = {
    "conv_layers": (lambda m, c: conv_layers(m), {}),
    "activations": (lambda m, c: activations(m, c.x, [c.conv]), {}),
    "record": (lambda m, c: _record(m, c, c.conv), {}),
    "record a reused module": (lambda m, c: _record(m, c, c.reused or c.conv),
                               {"user": "'block.relu' runs more than once"}),
    "representation_layers + layer_clustering": (_clustering, {}),
    "pairing_by_layer": (lambda m, c: pairing_by_layer(m), {}),
    "pairing_by_layer on a linear layer": (lambda m, c: pairing_by_layer(m, [c.fc]),
                                           {"lenet5": "not a convolution", "user": "not a convolution"}),
    "invariance_scores": (lambda m, c: invariance_scores(m, c.x, [c.conv], {"hflip": [hflip]}, rate=0.05), {}),
    "invariance_scores on a linear layer": (lambda m, c: invariance_scores(m, c.x, [c.fc], {"hflip": [hflip]}),
                                            {"lenet5": "not \\(N, C, h, w\\) maps", "user": "not \\(N, C, h, w\\)"}),
    "affine_map": (lambda m, c: affine_map(m, c.input_shape), {"lenet5": "is not affine", "user": "is not affine"}),
    "affine_map unchecked + max_affine_error": (_max_affine_error, {}),
    "polarity_accuracy": (lambda m, c: polarity_accuracy(m, c.x, c.y), {}),
    "negate_conv + swap_mismatches": (lambda m, c: swap_mismatches(m, negate_conv(m), c.x), {}),
    "exact_polarity_swap + swap_mismatches": (_exact_swap, {}),
    "patch_correlations": (lambda m, c: patch_correlations(get_layer(m, c.conv), c.x), {}),
    "reconstruct": (lambda m, c: reconstruct(get_layer(m, c.conv), c.x[:2], iters=5), {}),
    "crelu_features": (lambda m, c: crelu_features(get_layer(m, c.conv), c.x, nn.MaxPool2d(2)), {}),
    "edge_maps": (lambda m, c: edge_maps(c.x, get_layer(m, c.conv)), {}),
    "optvis.render": (lambda m, c: render(m, channel(c.conv, 0) + class_logit(1) + diversity(c.conv)
                                          - 1e-3 * total_variation(), param.image((2, *c.input_shape)),
                                          standard(*c.input_shape[1:]), steps=2), {}),
    "optvis.render_channels": (lambda m, c: render_channels(m, c.conv, [0, 1], input_shape=c.input_shape, steps=2),
                               {}),
    "optvis.render_channels of a reused module": (
        lambda m, c: render_channels(m, c.reused or c.conv, [0], input_shape=c.input_shape, steps=2),
        {"user": "'block.relu' runs more than once"}),
    "optvis.objective_values": (lambda m, c: objective_values(m, channel(c.conv, 0), c.x[:4]), {}),
    "summarize": (lambda m, c: summarize(m, c.input_shape), {}),
    "top_examples": (lambda m, c: top_examples(m, c.x, k=3), {}),
    "receptive_box": (lambda m, c: receptive_box(m, c.conv, 1, 1, c.input_shape[1:]), {}),
    # the user's last conv sits above its residual block: the autograd probe's path
    "receptive_box of the last conv": (lambda m, c: receptive_box(m, conv_layers(m)[-1], 0, 0, c.input_shape[1:]),
                                       {}),
    "occlusion_maps": (lambda m, c: occlusion_maps(m, c.x[:2], c.y[:2], window=8, stride=8), {}),
    "feature_evolution": (_evolution, {}),
    "evaluate": (lambda m, c: evaluate(m, c.x, c.y, batch_size=5), {}),
    "write_atlas_inputs": (lambda m, c: write_atlas_inputs(m, c.tmp, c.x, c.y, [str(k) for k in range(10)]), {}),
}


def _model_as_a_user_leaves_it(c: Case, mode: str) -> nn.Module:
    model = c.build()
    with torch.random.fork_rng(devices=[]):  # the dropout of this pass must not use up the test's random state
        torch.manual_seed(1)
        model.train()
        F.cross_entropy(model(c.x), c.y).backward()  # mid-training: every parameter has a .grad
    list(model.parameters())[-1].requires_grad_(False)  # and one is frozen
    if mode == "eval":
        model.eval()
    elif mode == "mixed":
        c.mixed(model)
    return model


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("instrument", list(INSTRUMENTS))
def test_the_model_is_left_exactly_as_found(instrument: str, case: str, mode: str, tmp_path: Path) -> None:
    call, refuses = INSTRUMENTS[instrument]
    g = torch.Generator().manual_seed(0)
    c = CASES[case]
    c = Case(**{**c.__dict__, "x": torch.rand(12, *c.input_shape, generator=g), "y": torch.arange(12) % 10,
                "tmp": tmp_path})
    model = _model_as_a_user_leaves_it(c, mode)
    before = snapshot(model)
    if case in refuses:
        with pytest.raises(UserError, match=refuses[case]):
            call(model, c)
    else:
        call(model, c)
    assert_untouched(model, before)


def test_every_mode_differs_somewhere():
    """The three modes are three different states, so the test above can tell a mode restored from one reset."""
    for c in CASES.values():
        states = set()
        for mode in MODES:
            model = c.build().train()
            if mode == "eval":
                model.eval()
            elif mode == "mixed":
                c.mixed(model)
            states.add(tuple(m.training for m in model.modules()))
        assert len(states) == 3, c.name
