"""Zeiler and Fergus's deconvnet, built as the paper builds it: a projection of one unit down to pixels.

Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, §2.1 and Fig. 1
(docs/REFERENCE.md §5): to see what one activation of layer l responds to, run the forward pass recording
the max-pooling *switches* (where each pooled maximum came from), zero every other activation of layer l,
and walk down to the input, undoing each layer: unpool with the switches, rectify with a ReLU, filter with
the transposed (flipped) filters of the conv layer, without its bias.

Relation to the deconvnet *rule* (`relu_rules.Deconvnet`, `create_method("deconvnet", model)`): each step
is the backward pass of its layer, except at a ReLU, where rectifying the signal is the rule max(g, 0);
unpooling with switches is the max-pool gradient and the transposed filters are the conv gradient. So:

- with `start="one"` (the kept units carry 1, the gradient of the unit's score), the projection *is* the
  deconvnet-rule gradient of the unit, to float rounding, written out layer by layer instead of by autograd;
- with `start="activation"` (the paper: the kept units carry their own activations a), it is the rule
  gradient of Σ a·stopgrad(a) over the kept units. For one neuron with a ≥ 0 (a ReLU or pool output) that is
  a × the rule gradient of the neuron, the rule being positively homogeneous. It is *not* for a negative
  activation (a conv's output before its ReLU: the rectification below flips which signs pass), nor for a
  whole map (its positions carry different a, not 1). Name the ReLU or pool after a conv to project the
  rectified map, as the paper (whose conv outputs are rectified in place) does.

The paper's nets are chains, and so is the walk: every leaf module must take the output of the leaf that
ran before it, and only layers with a transpose are walked through (unpooling, rectifying and filtering,
plus `nn.Linear` → signal @ W, flatten → reshape, dropout and identity). Choices where the paper has none:

- max pooling scatters each value to its switch and *adds* where overlapping windows (AlexNet's 3×3 at
  stride 2) share one; `F.max_unpool2d` writes instead, so one of them would be lost;
- average pooling (and adaptive average pooling) is linear: its transpose is its gradient;
- eval-mode BatchNorm is an affine map per channel: its transpose is the multiplication by
  weight / sqrt(running_var + eps), without the shift, as the bias of a conv is left out;
- anything else (local response normalisation, GELU, tanh, a custom layer) is refused with its name;
  a model that is not a chain (a residual add, `F.relu` with no module, a reshape in `forward`) is
  refused with the name of the module where the chain breaks: the deconvnet rule handles any graph.

Example:
    >>> proj = DeconvnetProjection(model).attribute(x, ("features.relu2", 5, 3, 4))   # (B, C, H, W)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from convscope.errors import UserError
from convscope.explain.base import Attribution, Target, check_unit, class_indices, is_unit
from convscope.explain.relu_rules import Deconvnet
from convscope.hooks import LeafCall, LeafTrace, conv_weight, frozen, get_layer, trace_modules

STARTS = ("activation", "one")
_MAX_POOLS = (nn.MaxPool2d, nn.AdaptiveMaxPool2d)
_AVG_POOLS = (nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_IDENTITIES = (_DropoutNd, nn.Identity)


def _switches(call: LeafCall) -> None:
    """Before a max pool runs, its switches, from its own input (`LeafTrace`'s `on_leaf`)."""
    x = call.inputs[0] if len(call.inputs) == 1 else None
    if isinstance(x, Tensor) and isinstance(call.module, _MAX_POOLS):
        call.note = _pool_with_switches(call.module, x)[1]


def _pool_with_switches(module: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Re-run a max pooling functionally, with `return_indices=True`: (pooled, switches)."""
    if isinstance(module, nn.AdaptiveMaxPool2d):
        return F.adaptive_max_pool2d(x, module.output_size, return_indices=True)
    return F.max_pool2d(x, module.kernel_size, module.stride, module.padding, module.dilation,
                        ceil_mode=module.ceil_mode, return_indices=True)


def _unpool(signal: Tensor, switches: Tensor, shape: torch.Size) -> Tensor:
    """Each value back to its switch, adding where windows share one (as the max-pool gradient does)."""
    out = signal.new_zeros(*shape[:2], shape[2] * shape[3])  # (B, C, H·W)
    out.scatter_add_(2, switches.flatten(2), signal.flatten(2))
    return out.view(shape)


def _transpose_by_gradient(fn: Callable[[Tensor], Tensor], shape: torch.Size, signal: Tensor) -> Tensor:
    """The transpose of a linear map `fn`: its vector-Jacobian product with `signal` (at any point)."""
    with torch.enable_grad():
        probe = signal.new_zeros(shape, requires_grad=True)
        (grad,) = torch.autograd.grad(fn(probe), probe, signal)
    return grad


def _conv_padding(name: str, module: nn.Module) -> tuple[int, int]:
    """The conv's padding as numbers; "same" only where it is symmetric."""
    padding = getattr(module, "padding", 0)
    if padding == "valid":
        return 0, 0
    if padding == "same":
        total = [d * (k - 1) for d, k in zip(_pair(module.dilation), _pair(module.kernel_size), strict=True)]
        if any(t % 2 for t in total):
            raise UserError(f"Conv {name!r} pads 'same' unevenly (an even kernel), which a transposed conv cannot "
                            "undo: give it numeric padding.")
        return total[0] // 2, total[1] // 2
    return _pair(padding)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, tuple | list) else (int(v), int(v))


def _deconv(name: str, module: nn.Module, signal: Tensor, shape: torch.Size) -> Tensor:
    """Filter with the conv's transposed (flipped) filters, no bias, back to the input's `shape`."""
    stride, dilation = _pair(getattr(module, "stride", 1)), _pair(getattr(module, "dilation", 1))
    kernel = conv_weight(module)  # (out, in/groups, kh, kw): conv_transpose2d reads it the other way round
    padding = _conv_padding(name, module)
    # The output padding restores the rows and columns the forward conv's stride dropped.
    extra = tuple(n - ((m - 1) * s - 2 * p + d * (k - 1) + 1) for n, m, s, p, d, k in
                  zip(shape[2:], signal.shape[2:], stride, padding, dilation, kernel.shape[2:], strict=True))
    return F.conv_transpose2d(signal, kernel, None, stride, padding, extra, getattr(module, "groups", 1), dilation)


def _is_conv(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        return module.padding_mode == "zeros"
    return hasattr(module, "dense_weight") and all(hasattr(module, a) for a in ("stride", "padding", "dilation"))


def _down(step: LeafCall, signal: Tensor) -> Tensor:
    """The signal at `step`'s input, from the signal at its output."""
    m, shape = step.module, step.inputs[0].shape
    if isinstance(m, nn.ReLU):
        return signal.clamp(min=0)
    if isinstance(m, _IDENTITIES):
        return signal
    if _is_conv(m):
        return _deconv(step.name, m, signal, shape)
    if isinstance(m, _MAX_POOLS):
        return _unpool(signal, step.note, shape)
    if isinstance(m, nn.Linear):
        return signal @ m.weight  # (B, out) @ (out, in) -> (B, in)
    if isinstance(m, nn.Flatten):
        return signal.reshape(shape)  # (B, C·h·w) -> (B, C, h, w)
    if isinstance(m, nn.AvgPool2d):
        return _transpose_by_gradient(lambda t: F.avg_pool2d(t, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                                             m.count_include_pad, m.divisor_override), shape, signal)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return _transpose_by_gradient(lambda t: F.adaptive_avg_pool2d(t, m.output_size), shape, signal)
    if isinstance(m, _BatchNorm) and m.running_var is not None:
        scale = torch.rsqrt(m.running_var + m.eps) * (m.weight if m.weight is not None else 1)
        return signal * scale.view(1, -1, *[1] * (signal.dim() - 2))  # (1, C, 1, 1) for maps
    raise CannotProject(f"The deconvnet projection has no inverse for module {step.name!r} ({type(m).__name__}): "
                        "it walks down through Conv2d, ReLU, max and average pooling, eval-mode BatchNorm, Linear, "
                        f"Flatten, Dropout and Identity only, so project a unit of a layer below {step.name!r}.")


class CannotProject(UserError):
    """The model below the layer is not a chain of layers the projection can walk down (the message says why)."""


class DeconvnetProjection(Attribution):
    """Zeiler and Fergus's deconvnet: one unit (or class) projected to pixels through unpooling with switches,
    rectification and transposed filters.

    Args:
        model: a chain of layers (see the module docstring).
        start: what the kept units carry down: "activation" (their own values, the paper) or "one" (the
            gradient of the unit's score, so the result equals the deconvnet rule's). A class target always
            starts from 1 at its logit.

    Example:
        >>> DeconvnetProjection(model).attribute(x, ("features.pool2", 5)).shape   # (B, C, H, W)
    """

    name: ClassVar[str] = "deconvnet_projection"

    def __init__(self, model: nn.Module, start: str = "activation") -> None:
        super().__init__(model)
        if start not in STARTS:
            raise UserError(f"Unknown start {start!r}: use {' or '.join(STARTS)}.")
        self.start = start

    def attribute(self, x: Tensor, target: Target) -> Tensor:
        x = self.prepare(x)
        layer = target[0] if is_unit(target) else None
        return self._walk(x, layer, lambda trace: self._top(trace, x, target))

    def attribute_units(self, x: Tensor, layer: str, units: Sequence[tuple[int, int, int]]) -> Tensor:
        """Example b projects its own neuron `units[b] = (channel, y, x)` of `layer`, all in one pass (the
        top-9 figure projects a different unit for each image)."""
        x = self.prepare(x)
        if len(units) != len(x):
            raise UserError(f"{len(units)} units for {len(x)} examples: give one (channel, y, x) per example.")

        def start(trace: LeafTrace) -> tuple[int, Tensor]:
            top, a = trace.top_of(layer, "the deconvnet projection"), trace.value
            signal = torch.zeros_like(a)
            for b, (channel, y, x_) in enumerate(units):
                check_unit((layer, channel, y, x_), tuple(a.shape))
                signal[b, channel, y, x_] = a[b, channel, y, x_] if self.start == "activation" else 1
            return top, signal

        return self._walk(x, layer, start)

    def _walk(self, x: Tensor, layer: str | None, start: Callable[[LeafTrace], tuple[int, Tensor]]) -> Tensor:
        """Run the forward pass, take the starting signal from `start`, and walk it down the chain to pixels."""
        if layer is not None:
            get_layer(self.model, layer)  # an unknown name fails here, with suggestions
        trace = LeafTrace(self.model, layer, on_leaf=_switches)
        with frozen(self.model), torch.no_grad(), trace_modules(self.model, trace.pre, trace.post):
            self.model(x)
            top, signal = start(trace)
            broken = trace.chain_break(x, top)
            if broken is not None:
                raise CannotProject(
                    f"Module {broken[0].name!r} does not take {broken[1]}, so the model is not a chain of layers (a "
                    "residual add, a functional call such as F.relu, or a reshape in forward) and the deconvnet "
                    "projection cannot walk it: use the deconvnet rule, create_method('deconvnet', model), which "
                    "follows any graph.")
            for call in reversed(trace.calls[: top + 1]):
                signal = _down(call, signal)
        return signal.detach()

    def _top(self, trace: LeafTrace, x: Tensor, target: Target) -> tuple[int, Tensor]:
        """Where the walk starts, and the signal there: the target's units kept, every other one zeroed."""
        if is_unit(target):
            layer, channel, *pos = target
            top, a = trace.top_of(layer, "the deconvnet projection"), trace.value
            check_unit(target, tuple(a.shape))  # type: ignore[arg-type]
            keep = (slice(None), channel, *pos)
            signal = torch.zeros_like(a)
            signal[keep] = a[keep] if self.start == "activation" else 1
            return top, signal
        out, last = trace.output, trace.calls[-1] if trace.calls else None
        if not isinstance(out, Tensor) or last is None or out is not last.output or out._version != last.out_version:
            raise UserError("The model's output is not the output of its last layer module, so the deconvnet "
                            "projection cannot start from a class: project a unit ('layer.name', channel) instead.")
        if out.dim() != 2:
            raise UserError(f"The model's output has shape {tuple(out.shape)}, not (B, classes): project a unit "
                            "('layer.name', channel) instead of a class.")
        signal = torch.zeros_like(out)
        signal[torch.arange(len(out)), class_indices(target, len(out), out.shape[1], out.device)] = 1
        return len(trace.calls) - 1, signal


def project_units(model: nn.Module, x: Tensor, layer: str, units: Sequence[tuple[int, int, int]],
                  how: str = "projection") -> tuple[Tensor, str]:
    """Example b's own neuron `units[b] = (channel, y, x)` of `layer` projected to pixels, and how: "projection",
    the deconvnet walked down (switches, rectification, transposed filters, starting from 1 at the unit), where
    the model is a chain of layers it inverts below `layer`; else "rule", the deconvnet rule's gradient, which
    equals the projection on chains (tests) and follows any graph (a residual add, `F.relu`). A caller that
    already got "rule" for this layer passes `how="rule"`, and the walk is not tried again."""
    if how == "projection":
        try:
            return DeconvnetProjection(model, start="one").attribute_units(x, layer, units), "projection"
        except CannotProject:
            pass
    return Deconvnet(model).attribute_units(x, layer, units), "rule"


__all__ = ["STARTS", "CannotProject", "DeconvnetProjection", "project_units"]
