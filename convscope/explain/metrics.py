"""Is an explanation any good? Deletion/insertion curves and the model-randomisation sanity check.

- Deletion and insertion (Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of
  Black-box Models", BMVC 2018): rank the pixels by attribution (summed over channels), then remove them
  in that order, `pixels_per_step` at a time, replacing them with a substitute (zero, a blurred copy of
  the image, or its per-channel mean), and record the target's softmax probability after each step; or
  start from the substitute and insert them. The area under the curve, over the fraction of pixels
  changed, is the score: lower is better for deletion, higher for insertion.
- Cascading model randomisation (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018): re-draw
  the weights of the network layer by layer from the top, recompute the map after each layer, and measure
  its Spearman rank correlation with the original map, of absolute values and with sign. A method whose
  maps stay the same does not depend on what the model learned. The user's model is never changed: the
  check randomises a copy, and draws its weights without touching the global random state.

Example:
    >>> curves = deletion_insertion(model, x, GradCAM(model, "features.conv2").attribute(x, 3), 3)
    >>> curves.deletion_auc, curves.insertion_auc                      # one per example
    >>> check = randomization_check(lambda m: Saliency(m), model, x, 3)
    >>> check.layers, check.spearman_abs.mean(1)                       # from the top layer down
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import Tensor, nn

from convscope.errors import UserError
from convscope.explain.base import Attribution, Target, class_indices
from convscope.hooks import frozen

SUBSTITUTES = ("zero", "blur", "mean")


@dataclass
class Curves:
    """Deletion and insertion curves of a batch: the target's probability after each step."""

    fraction: np.ndarray  # (S+1,) share of pixels changed, 0 … 1
    deletion: np.ndarray  # (B, S+1)
    insertion: np.ndarray  # (B, S+1)

    @property
    def deletion_auc(self) -> np.ndarray:
        return np.trapezoid(self.deletion, self.fraction, axis=1)

    @property
    def insertion_auc(self) -> np.ndarray:
        return np.trapezoid(self.insertion, self.fraction, axis=1)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Each channel of (B, C, H, W) blurred by a Gaussian of `sigma` pixels (separable, reflected borders)."""
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    C = x.shape[1]
    pad = min(radius, x.shape[2] - 1, x.shape[3] - 1)
    out = F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad > 0 else x
    if pad < radius:  # an image smaller than the kernel: the rest of the border is zeros
        out = F.pad(out, (radius - pad,) * 4)
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)  # along W
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)  # along H


def substitute_for(x: Tensor, substitute: str, blur_sigma: float) -> Tensor:
    """What removed pixels become: zeros, a blurred copy of x, or each image's per-channel mean."""
    if substitute == "zero":
        return torch.zeros_like(x)
    if substitute == "blur":
        return gaussian_blur(x, blur_sigma)
    if substitute == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    raise UserError(f"Unknown substitute {substitute!r}: use {', '.join(SUBSTITUTES)}.")


def deletion_insertion(model: nn.Module, x: Tensor, attributions: Tensor, target: Target, steps: int = 32,
                       substitute: str = "blur", blur_sigma: float = 5.0, batch: int = 256) -> Curves:
    """The deletion and insertion curves of `attributions` ((B, C, H, W) or CAMs (B, 1, H, W)) for x.

    `steps` steps change ⌈H·W / steps⌉ pixels each (all channels of a pixel at once); `batch` bounds the
    images per forward pass.
    """
    method = Attribution(model)
    x = method.prepare(x)
    B, C, H, W = x.shape
    if attributions.shape[0] != B or attributions.shape[2:] != x.shape[2:]:
        raise UserError(f"Attributions of shape {tuple(attributions.shape)} do not fit inputs {tuple(x.shape)}: "
                        "give one map per example at the input's size (upsample CAMs).")
    if steps < 1:
        raise UserError(f"steps must be at least 1, not {steps}.")
    n = H * W
    per_step = -(-n // steps)
    # (B, H·W) pixel order, most relevant first; a stable sort keeps ties in reading order
    order = torch.sort(-attributions.detach().to(x.device, x.dtype).sum(1).flatten(1), dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=x.device).expand(B, n))
    counts = [min(k * per_step, n) for k in range(steps + 1)]
    sub = substitute_for(x, substitute, blur_sigma)
    idx = class_indices(target, B, _classes(model, x), x.device)
    curves = {}
    for kind in ("deletion", "insertion"):
        start, end = (x, sub) if kind == "deletion" else (sub, x)
        probs = []
        with torch.no_grad(), frozen(model):
            # one image per (count, example): pixels whose rank is below the count come from `end`
            for k0 in range(0, len(counts), max(1, batch // B)):
                ks = torch.tensor(counts[k0:k0 + max(1, batch // B)], device=x.device)
                changed = (rank[None] < ks.view(-1, 1, 1)).view(len(ks), B, 1, H, W)  # (K, B, 1, H, W)
                images = torch.where(changed, end[None], start[None]).reshape(-1, C, H, W)
                p = model(images).softmax(1).view(len(ks), B, -1)
                probs.append(p.gather(2, idx.view(1, B, 1).expand(len(ks), B, 1))[..., 0])
        curves[kind] = torch.cat(probs).T.cpu().double().numpy()  # (B, S+1)
    return Curves(np.array(counts, dtype=np.float64) / n, curves["deletion"], curves["insertion"])


def _classes(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad(), frozen(model):
        out = model(x[:1])
    if out.dim() != 2:
        raise UserError(f"Deletion and insertion need class scores (B, classes); the model gives {tuple(out.shape)}.")
    return out.shape[1]


@dataclass
class SanityCheck:
    """Spearman rank correlations of the maps after each cascading randomisation step with the original map."""

    layers: list[str]  # the layers randomised, from the top; step i has layers[: i + 1] randomised
    spearman_abs: np.ndarray  # (L, B) of |map|
    spearman_signed: np.ndarray  # (L, B) with sign


def weighted_layers(model: nn.Module) -> list[str]:
    """Modules that own weights (conv, linear, normalisation), in registration order: what is randomised."""
    return [name for name, m in model.named_modules()
            if name and any(True for _ in m.parameters(recurse=False))]


def spearman(a: Tensor, b: Tensor) -> np.ndarray:
    """Per example, the Spearman rank correlation of two maps of the same shape (0 if one is constant)."""
    out = []
    for u, v in zip(a.flatten(1).double().cpu().numpy(), b.flatten(1).double().cpu().numpy(), strict=True):
        out.append(0.0 if u.std() == 0 or v.std() == 0 else float(spearmanr(u, v).statistic))
    return np.array(out)


def randomization_check(make: Callable[[nn.Module], Attribution], model: nn.Module, x: Tensor, target: Target,
                        layers: list[str] | None = None, seed: int = 0, **options: object) -> SanityCheck:
    """Adebayo et al.'s cascading randomisation of `make(model)`'s maps, on a copy of `model`.

    `make` builds the method for a model (e.g. `lambda m: GradCAM(m, "features.conv2")`); `layers`
    defaults to every module with weights, randomised from the last to the first. Each is re-drawn with
    its own `reset_parameters` (PyTorch's initialisation) from a generator seeded with `seed`.
    """
    names = list(reversed(layers if layers is not None else weighted_layers(model)))
    if not names:
        raise UserError("The model has no layers with weights to randomise.")
    if isinstance(target, int) or not isinstance(target, tuple):
        with torch.no_grad(), frozen(model):  # fix the explained class: the randomised model's is meaningless
            target = class_indices(target, len(x), _classes(model, x), torch.device("cpu"))
    original = make(model).attribute(x, target, **options)
    twin = copy.deepcopy(model)
    rows_abs, rows_signed = [], []
    with torch.random.fork_rng(devices=[]):  # the global random state comes back unchanged
        torch.manual_seed(seed)
        for name in names:
            module = twin.get_submodule(name)
            if not hasattr(module, "reset_parameters"):
                raise UserError(f"Layer {name!r} ({type(module).__name__}) has no reset_parameters(), so it cannot "
                                "be re-initialised: pass layers= without it.")
            with torch.no_grad():
                module.reset_parameters()
            randomised = make(twin).attribute(x, target, **options)
            rows_abs.append(spearman(original.abs(), randomised.abs()))
            rows_signed.append(spearman(original, randomised))
    return SanityCheck(names, np.stack(rows_abs), np.stack(rows_signed))


__all__ = ["SUBSTITUTES", "Curves", "SanityCheck", "deletion_insertion", "gaussian_blur", "randomization_check",
           "spearman", "substitute_for", "weighted_layers"]
