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

import torch
from torch import Tensor

from convscope.explain.base import Attribution, Target
from convscope.hooks import frozen, relu_rule


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


class GuidedBackprop(_RuleGradient):
    """Guided backpropagation: 1[x > 0] · max(g, 0) at every ReLU."""

    name = "guided_backprop"
    rule = "guided"


class Deconvnet(_RuleGradient):
    """The deconvnet rule: max(g, 0) at every ReLU."""

    name = "deconvnet"
    rule = "deconvnet"


__all__ = ["Deconvnet", "GuidedBackprop"]
