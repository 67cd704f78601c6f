"""Explanations of single inputs: one contract (`Method(model).attribute(x, target)`), every method users know.

| name | method | paper |
|---|---|---|
| `saliency` | ∂y/∂x | Simonyan, Vedaldi, Zisserman 2014 |
| `input_x_gradient` | x ⊙ ∂y/∂x | Shrikumar et al. 2016 |
| `integrated_gradients` | (x − x′) ⊙ ∫ ∂y(x′ + α(x − x′))/∂x dα | Sundararajan, Taly, Yan 2017 |
| `smoothgrad`, `vargrad` | mean / variance of saliency over noisy copies | Smilkov et al. 2017; Adebayo et al. 2018 |
| `guided_backprop` | 1[x > 0]·max(g, 0) at each ReLU | Springenberg et al. 2015 |
| `deconvnet` | max(g, 0) at each ReLU | Zeiler and Fergus 2014 |
| `gradcam` | ReLU(Σ_k mean(∂y/∂A^k) A^k) at a conv layer | Selvaraju et al. 2017 |
| `guided_gradcam` | guided backprop ⊙ upsampled Grad-CAM | Selvaraju et al. 2017 |
| `occlusion` | mean score drop of the windows covering each pixel | Zeiler and Fergus 2014 |
| `deconvnet_projection` | a unit walked down: unpool (switches), rectify, transposed filters | Zeiler and Fergus 2014 |

`create_method(name, model, layer=...)` builds any of them by name (the command line's `convscope explain`);
`explain.metrics` judges them (deletion/insertion, the randomisation sanity check).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from convscope.errors import UserError, unknown_name
from convscope.explain.base import Attribution, Target, Unit
from convscope.explain.cam import GradCAM, GuidedGradCAM
from convscope.explain.deconvnet import DeconvnetProjection
from convscope.explain.gradients import InputXGradient, IntegratedGradients, Saliency, SmoothGrad
from convscope.explain.occlusion import Occlusion
from convscope.explain.relu_rules import Deconvnet, GuidedBackprop
from convscope.hooks import conv_layers

# name -> (builder taking the model, the layer and the setup options; one line for `--list`)
_METHODS: dict[str, tuple[Callable[..., Attribution], str]] = {
    "saliency": (lambda m, layer, **kw: Saliency(m), "gradient of the target's score (Simonyan et al. 2014)"),
    "input_x_gradient": (lambda m, layer, **kw: InputXGradient(m), "input times gradient"),
    "integrated_gradients": (lambda m, layer, **kw: IntegratedGradients(m),
                             "path integral of gradients from a baseline (Sundararajan et al. 2017)"),
    "smoothgrad": (lambda m, layer, **kw: SmoothGrad(Saliency(m), **kw),
                   "saliency averaged over noisy copies (Smilkov et al. 2017)"),
    "vargrad": (lambda m, layer, **kw: SmoothGrad(Saliency(m), kind="vargrad", **kw),
                "variance of saliency over noisy copies (Adebayo et al. 2018)"),
    "guided_backprop": (lambda m, layer, **kw: GuidedBackprop(m),
                        "guided backpropagation through every ReLU (Springenberg et al. 2015)"),
    "deconvnet": (lambda m, layer, **kw: Deconvnet(m), "the deconvnet rule at every ReLU (Zeiler & Fergus 2014)"),
    "gradcam": (lambda m, layer, **kw: GradCAM(m, layer), "gradient-weighted class activation map (Selvaraju 2017)"),
    "guided_gradcam": (lambda m, layer, **kw: GuidedGradCAM(m, layer), "guided backprop times Grad-CAM"),
    "occlusion": (lambda m, layer, **kw: Occlusion(m, **kw), "score drop under a sliding window of zeros (Zeiler & "
                  "Fergus 2014)"),
    "deconvnet_projection": (lambda m, layer, **kw: DeconvnetProjection(m, **kw),
                             "a unit projected to pixels with switches and transposed filters (Zeiler & Fergus 2014)"),
}
LAYER_METHODS = ("gradcam", "guided_gradcam")
# Methods whose map of a class is another method's, number for number (a class projection starts from 1 at its
# logit: the deconvnet rule's gradient); comparisons of class explanations leave them out.
SAME_CLASS_MAP = {"deconvnet_projection": "deconvnet"}


def list_methods() -> dict[str, str]:
    """Every method's name and a one-line description."""
    return {name: about for name, (_, about) in _METHODS.items()}


def create_method(name: str, model: nn.Module, layer: str | None = None, **setup: Any) -> Attribution:
    """The method `name` for `model`; CAM methods take `layer` (default: the model's last conv layer).

    Example:
        >>> create_method("gradcam", model).attribute(x, target=3).shape     # (B, 1, H, W)
    """
    if name not in _METHODS:
        raise unknown_name("explanation method", name, _METHODS)
    if name in LAYER_METHODS and layer is None:
        convs = conv_layers(model)
        if not convs:
            raise UserError(f"{name} needs a conv layer and the model has none: pass layer='dotted.name'.")
        layer = convs[-1]
    return _METHODS[name][0](model, layer, **setup)


__all__ = ["LAYER_METHODS", "SAME_CLASS_MAP", "Attribution", "Deconvnet", "DeconvnetProjection", "GradCAM",
           "GuidedBackprop", "GuidedGradCAM", "InputXGradient", "IntegratedGradients", "Occlusion", "Saliency",
           "SmoothGrad", "Target", "Unit", "create_method", "list_methods"]
