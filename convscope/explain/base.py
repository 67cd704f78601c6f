"""The contract every explanation method follows, and what the methods share.

    method = Method(model, **setup)
    attributions = method.attribute(x, target, **options)

`x` is one `(B, C, H, W)` tensor. The result has `x`'s shape (class-activation maps: `(B, 1, H, W)`),
raw and signed: normalisation happens only when drawing. `target` says what is explained:

- a class index (`3`), the same for every example, or one class per example (a list or a `(B,)` tensor);
- a unit inside the network: a whole feature map `("features.conv2", 5)` (the sum of its activations)
  or one neuron `("features.conv2", 5, y, x)`, so the backward pass can start from any layer, as
  Zeiler and Fergus project a feature map.

Every method leaves the model exactly as it found it (parameters and buffers, each module's train/eval
flag, `requires_grad`, no hooks, no `.grad`, the global autograd mode and random state): the forward
passes run inside `hooks.frozen`, in eval mode. Device and dtype come from the model's parameters.
This follows Captum's `Attribution` (captum/attr/_utils/attribution.py), with one tensor in place of
"tensor or tuple plus additional_forward_args".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from convscope.errors import InputShapeError, UserError
from convscope.hooks import frozen, get_layer, model_device, record

Unit = tuple[str, int] | tuple[str, int, int, int]
Target = int | Sequence[int] | Tensor | Unit


class Attribution:
    """Base class: holds the model and turns (x, target) into the per-example score that is explained."""

    name: ClassVar[str] = ""
    cam: ClassVar[bool] = False  # True when the result is one map per example, (B, 1, H, W)

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise UserError(f"An explanation method takes an nn.Module, not {type(model).__name__}.")
        self.model = model

    def attribute(self, x: Tensor, target: Target, **options: Any) -> Tensor:
        raise NotImplementedError

    # ---------------------------------------------------------------- what the methods share

    def prepare(self, x: Tensor) -> Tensor:
        """`x` checked as one (B, C, H, W) tensor and moved to the model's device and dtype."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputShapeError(f"Explanations take one (B, C, H, W) tensor, not {shape}: add a batch axis with "
                                  "x.unsqueeze(0) for a single image.")
        p = next(iter(self.model.parameters()), None)
        dtype = p.dtype if p is not None and p.is_floating_point() else x.dtype
        return x.detach().to(model_device(self.model, default=x.device), dtype)

    def scores(self, x: Tensor, target: Target) -> Tensor:
        """The (B,) scores that are explained: the target class's output, or the target unit's activation.

        Call inside `frozen(self.model)`, with gradients enabled, so the scores backpropagate to `x`.
        """
        if is_unit(target):
            return unit_scores(self.model, x, target)  # type: ignore[arg-type]
        return class_scores(self.model(x), target, len(x))

    def gradient(self, x: Tensor, target: Target) -> Tensor:
        """d score / d x for each example (the scores of different examples are independent)."""
        with frozen(self.model):
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.scores(x, target).sum(), x)
        return grad


def is_unit(target: Any) -> bool:
    return isinstance(target, tuple) and len(target) in (2, 4) and isinstance(target[0], str)


def repeat_target(target: Target, batch: int, times: int, interleave: bool = False) -> Target:
    """The target of a batch made of `times` copies of a `batch`: copy after copy, or with each example's
    copies in a row (`interleave=True`). Unit and single-class targets stay as they are."""
    if is_unit(target) or isinstance(target, int):
        return target
    t = torch.as_tensor(target, dtype=torch.long).flatten()
    t = t.expand(batch) if t.numel() == 1 else t
    return t.repeat_interleave(times) if interleave else t.repeat(times)


def class_indices(target: Target, batch: int, classes: int, device: torch.device) -> Tensor:
    """The (B,) class indices a class target names, checked against the output's `classes`."""
    if isinstance(target, bool) or is_unit(target):
        raise UserError(f"Target {target!r} is not a class index: give an int, one int per example, or a unit "
                        "('layer.name', channel[, y, x]).")
    if isinstance(target, int):
        idx = torch.full((batch,), target, dtype=torch.long)
    else:
        try:
            idx = torch.as_tensor(target, dtype=torch.long).flatten().cpu()
        except (TypeError, ValueError, RuntimeError):
            raise UserError(f"Target {target!r} is not a class index or one index per example.") from None
        if idx.numel() == 1:
            idx = idx.expand(batch)
        if idx.numel() != batch:
            raise UserError(f"{idx.numel()} targets for {batch} examples: give one class per example or a single "
                            "class for all.")
    if len(idx) and (idx.min() < 0 or idx.max() >= classes):
        raise UserError(f"Target class {int(idx.max() if idx.max() >= classes else idx.min())} is out of range: the "
                        f"model has {classes} outputs (0..{classes - 1}).")
    return idx.to(device)


def class_scores(out: Tensor, target: Target, batch: int) -> Tensor:
    """out[b, target[b]] for a (B, classes) output."""
    if out.dim() != 2:
        raise UserError(f"The model's output has shape {tuple(out.shape)}, not (B, classes): explain a unit "
                        "('layer.name', channel) instead of a class.")
    idx = class_indices(target, batch, out.shape[1], out.device)
    return out.gather(1, idx[:, None])[:, 0]


def check_unit(unit: Unit, shape: tuple[int, ...]) -> None:
    """Raise `UserError` unless `unit`'s channel (and position) exist in its layer's output of `shape` (B, C, ...)."""
    layer, channel, *pos = unit
    if not 0 <= channel < shape[1]:
        raise UserError(f"Channel {channel} is out of range: layer {layer!r} has {shape[1]} channels "
                        f"(0..{shape[1] - 1}).")
    if pos:
        if len(shape) != 4:
            raise UserError(f"Layer {layer!r} has no spatial positions (output {tuple(shape)}): give "
                            f"(layer, channel) without y, x.")
        y, x = pos
        if not (0 <= y < shape[2] and 0 <= x < shape[3]):
            raise UserError(f"Position ({y}, {x}) is outside layer {layer!r}'s {shape[2]}×{shape[3]} maps.")


def unit_scores(model: nn.Module, x: Tensor, unit: Unit) -> Tensor:
    """The (B,) activation of a unit: a whole feature map (summed) or one neuron of a named layer."""
    layer = unit[0]
    get_layer(model, layer)  # an unknown name fails here, with suggestions
    with record(model, [layer], detach=False) as acts:
        model(x)
    return unit_values(acts[layer], unit)


def unit_values(a: Tensor, unit: Unit) -> Tensor:
    """The (B,) activation of `unit` given its layer's output `a`: a feature map summed, or one neuron."""
    check_unit(unit, tuple(a.shape))
    _, channel, *pos = unit
    a = a[:, channel]
    if pos:
        y, x_ = pos
        return a[:, y, x_]
    return a.flatten(1).sum(1) if a.dim() > 1 else a  # a (B,) unit of a fully connected layer is itself


__all__ = ["Attribution", "Target", "Unit", "check_unit", "class_indices", "class_scores", "is_unit", "repeat_target",
           "unit_scores", "unit_values"]
