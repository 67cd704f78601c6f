"""Class-activation maps: Grad-CAM and guided Grad-CAM.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017): for a conv layer with maps A^k, the weights α_k = mean over positions of
∂y_c/∂A^k, and the map L = ReLU(Σ_k α_k A^k), at the layer's resolution; upsampled to the input's size
for drawing (bilinear by default, `upsample=None` keeps the layer's size). Guided Grad-CAM multiplies the
upsampled map with guided backpropagation (nearest-neighbour upsampling by default, as Captum).

The gradient ∂y_c/∂A is taken with respect to the layer's own output, before any in-place ReLU that
follows it (`hooks.taps`), so `ReLU(inplace=True)` after the layer does not change the map.

Example:
    >>> cam = GradCAM(model, "features.conv2").attribute(x, target=3)     # (B, 1, H, W)
    >>> ggc = GuidedGradCAM(model, "features.conv2").attribute(x, 3)      # (B, C, H, W)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.errors import UserError
from convscope.explain.base import Attribution, Target
from convscope.hooks import frozen, get_layer, relu_rule, taps

UPSAMPLING = ("bilinear", "nearest", "bicubic")


class GradCAM(Attribution):
    """Grad-CAM at the conv layer `layer` (a dotted name)."""

    name = "gradcam"
    cam = True

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__(model)
        get_layer(model, layer)  # an unknown name fails now, with suggestions
        self.layer = layer

    def layer_map(self, x: Tensor, target: Target, relu: bool = True) -> Tensor:
        """The map at the layer's resolution, (B, 1, h, w); `relu=False` keeps its negative part."""
        x = self.prepare(x)
        # The graph starts at the layer's output (cut=True): nothing below the layer is differentiated.
        with frozen(self.model), taps(self.model, [self.layer], cut=True) as (values, _):
            scores = self.scores(x, target)
            tapped = values.get(self.layer)
            grad = None
            if tapped is not None and scores.requires_grad:
                (grad,) = torch.autograd.grad(scores.sum(), tapped, allow_unused=True)
        return self.weighted(tapped, grad, relu)

    def weighted(self, acts: Tensor | None, grad: Tensor | None, relu: bool = True) -> Tensor:
        """ReLU(Σ_k α_k A^k) from the layer's maps A and the gradient ∂y/∂A, (B, 1, h, w)."""
        if acts is None or grad is None:
            raise UserError(f"The score does not depend on layer {self.layer!r}: choose a layer the target "
                            "comes after.")
        acts = acts.detach()
        if acts.dim() != 4:
            raise UserError(f"Grad-CAM needs a layer with (B, K, h, w) maps; {self.layer!r} gives "
                            f"{tuple(acts.shape)}: choose a conv layer.")
        alpha = grad.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
        cam = (alpha * acts).sum(1, keepdim=True)  # (B, 1, h, w)
        return F.relu(cam) if relu else cam

    def attribute(self, x: Tensor, target: Target, upsample: str | None = "bilinear", relu: bool = True) -> Tensor:
        """(B, 1, H, W) with upsampling to x's size, (B, 1, h, w) with `upsample=None`."""
        cam = self.layer_map(x, target, relu)
        return cam if upsample is None else resize(cam, tuple(x.shape[2:]), upsample)


def resize(maps: Tensor, size: tuple[int, ...], mode: str) -> Tensor:
    """(B, 1, h, w) maps resized to `size` by `mode` (bilinear, nearest or bicubic)."""
    if mode not in UPSAMPLING:
        raise UserError(f"Unknown upsampling {mode!r}: use {', '.join(UPSAMPLING)} or None.")
    if tuple(maps.shape[2:]) == tuple(size):
        return maps
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(maps, size=size, mode=mode, **kwargs)


class GuidedGradCAM(Attribution):
    """Guided Grad-CAM: guided backpropagation times the Grad-CAM map upsampled to the input size."""

    name = "guided_gradcam"

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__(model)
        self.gradcam = GradCAM(model, layer)

    def attribute(self, x: Tensor, target: Target, upsample: str = "nearest") -> Tensor:
        # One forward pass serves both gradients: the ReLUs' rule is read at backward time, "ordinary" for
        # Grad-CAM's ∂y/∂A (through the layers after A only), then "guided" down to the input.
        x = self.prepare(x)
        layer = self.gradcam.layer
        with frozen(self.model):
            x.requires_grad_(True)
            with relu_rule(self.model, "guided") as rule, taps(self.model, [layer]) as (values, _):
                score = self.scores(x, target).sum()
            acts, grad = values.get(layer), None
            if acts is not None and acts.requires_grad:
                rule.rule = "ordinary"
                (grad,) = torch.autograd.grad(score, acts, retain_graph=True, allow_unused=True)
            cam = self.gradcam.weighted(acts, grad)
            rule.rule = "guided"
            (guided,) = torch.autograd.grad(score, x)
        return guided * resize(cam, tuple(x.shape[2:]), upsample)


__all__ = ["UPSAMPLING", "GradCAM", "GuidedGradCAM", "resize"]
