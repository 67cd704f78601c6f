"""Guided backpropagation and the deconvnet rule: gradients with a different rule at every ReLU.

- Guided backpropagation (Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for Simplicity:
  The All Convolutional Net", ICLR workshop 2015): at each ReLU pass back max(g, 0) where the forward
  input was positive, R = 1[x > 0] · max(g, 0).
- The deconvnet rule (Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014,
  read as a gradient): pass back max(g, 0) whatever the forward sign, R = max(g, 0).

The rule is applied by `hooks.relu_rule`, which catches every way a model can call a ReLU (`nn.ReLU` in
place or not, one module called twice, `F.relu`, `torch.relu`, `Tensor.relu`/`relu_`) inside the method's
call only. The anchor libraries each miss a case: Captum hooks `nn.ReLU` modules only (it warns on
`F.relu` and computes the ordinary gradient there), TorchRay patches `torch.relu` globally, and
pytorch-grad-cam swaps the user's modules. A model with an activation the rule does not define (GELU,
SiLU, tanh, ...) is refused with the names of its modules.

Example:
    >>> gb = GuidedBackprop(model).attribute(x, target=3)                 # (B, C, H, W)
    >>> dc = Deconvnet(model).attribute(x, ("features.conv2", 5))         # project one feature map
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from convscope.errors import UserError
from convscope.explain.base import Attribution, Target, check_unit
from convscope.hooks import frozen, get_layer, record, relu_rule


class _RuleGradient(Attribution):
    rule = ""

    def attribute(self, x: Tensor, target: Target) -> Tensor:
        x = self.prepare(x)
        with frozen(self.model):
            x = x.requires_grad_(True)
            with relu_rule(self.model, self.rule):  # the rule is in the graph: backward runs outside the mode
                score = self.scores(x, target).sum()
            (grad,) = torch.autograd.grad(score, x)
        return grad

    def attribute_units(self, x: Tensor, layer: str, units: Sequence[tuple[int, int, int]]) -> Tensor:
        """Example b explains its own neuron `units[b] = (channel, y, x)` of `layer`, all in one pass (the top-9
        figures project a different unit for each image; `DeconvnetProjection.attribute_units` on chains)."""
        x = self.prepare(x)
        if len(units) != len(x):
            raise UserError(f"{len(units)} units for {len(x)} examples: give one (channel, y, x) per example.")
        get_layer(self.model, layer)  # an unknown name fails here, with suggestions
        with frozen(self.model):
            x = x.requires_grad_(True)
            with relu_rule(self.model, self.rule), record(self.model, [layer], detach=False) as acts:
                self.model(x)
            a = acts[layer]
            for unit in units:
                check_unit((layer, *unit), tuple(a.shape))
            c, y, x_ = (torch.tensor([u[i] for u in units], device=a.device) for i in range(3))
            (grad,) = torch.autograd.grad(a[torch.arange(len(units), device=a.device), c, y, x_].sum(), x)
        return grad


class GuidedBackprop(_RuleGradient):
    """Guided backpropagation: 1[x > 0] · max(g, 0) at every ReLU."""

    name = "guided_backprop"
    rule = "guided"


class Deconvnet(_RuleGradient):
    """The deconvnet rule: max(g, 0) at every ReLU."""

    name = "deconvnet"
    rule = "deconvnet"


__all__ = ["Deconvnet", "GuidedBackprop"]
