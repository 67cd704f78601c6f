"""The one place in convscope that registers forward/backward hooks.

Every hook lives inside a context manager that removes it in `finally`, so a user's model leaves an
analysis exactly as it came in: same parameters, same modules, no hooks, same train/eval mode
(Captum's `guided_backprop_deconvnet.py` and `tests/attr/test_hook_removal.py` follow the same rule).

Example:
    >>> with record(model, ["features.conv1", "features.conv2"]) as acts:
    ...     model(x)
    >>> acts["features.conv1"].shape   # (B, 6, 28, 28)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from convscope.errors import LayerReuseError, UserError, unknown_name


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule at dotted `name`, with a suggestion when the name is wrong."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise unknown_name("layer", name, [n for n, _ in model.named_modules() if n]) from None


def model_device(model: nn.Module, default: torch.device | str = "cpu") -> torch.device:
    """The device of the model's first parameter or buffer (`default` for a model with neither)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device(default)


def model_dtype(model: nn.Module, default: torch.dtype = torch.float32) -> torch.dtype:
    """The dtype of the model's first floating-point parameter or buffer (`default` for a model with none)."""
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return default


def conv_layers(model: nn.Module) -> list[str]:
    """Dotted names of the model's 2-D convolutions, in registration (= forward, for our zoo) order.

    Besides `nn.Conv2d`, a module counts as a convolution when it offers `dense_weight()` returning an
    `(out, in, kh, kw)` kernel (LeNet-5's partially connected C3 does).
    """
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d) or hasattr(m, "dense_weight")]


def conv_weight(module: nn.Module) -> torch.Tensor:
    """The `(out, in, kh, kw)` kernel of a convolution found by `conv_layers`."""
    return module.dense_weight() if hasattr(module, "dense_weight") else module.weight


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode for the block, then restore each module's own mode."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.training = mode


@contextmanager
def record(model: nn.Module, names: list[str], detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the named submodules during forward passes inside the block.

    Each output is cloned as it is recorded, so a later in-place operation (a `ReLU(inplace=True)`
    after the layer) cannot change it; with `detach=False` the clone stays in the autograd graph and
    gradients flow back through it into the layer (what feature visualisation needs). A module that
    runs more than once per forward pass (a reused ReLU) would make "its output" ambiguous, so that
    raises `LayerReuseError` instead of silently keeping one of the calls.
    """
    modules = {n: get_layer(model, n) for n in names}
    acts: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}
    handles = []

    def hook_for(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            calls[name] = calls.get(name, 0) + 1
            if calls[name] > 1:
                raise LayerReuseError(
                    f"Layer {name!r} runs more than once per forward pass (one module called twice, as a residual "
                    "block's shared ReLU), so it has no one output: record layers that run once, which "
                    "representation_layers(model, x) lists, or give each call its own module.")
            acts[name] = output.detach().clone() if detach else output.clone()
        return hook

    try:
        for n, m in modules.items():
            handles.append(m.register_forward_hook(hook_for(n)))
        # Reset the call counts before each forward pass.
        handles.append(model.register_forward_pre_hook(lambda *_: calls.clear()))
        yield acts
    finally:
        for h in handles:
            h.remove()


@contextmanager
def trace_modules(model: nn.Module, pre: Callable[[nn.Module, tuple], None],
                  post: Callable[[str, nn.Module, tuple, Any], None]) -> Iterator[None]:
    """Call `pre(module, inputs)` before and `post(name, module, inputs, output)` after every module runs.

    Used by `models.summary` to follow one forward pass through every layer, containers included.
    """
    handles = []
    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(lambda m, inputs: pre(m, inputs)))
            handles.append(module.register_forward_hook(
                lambda m, inputs, output, name=name: post(name, m, inputs, output)))
        yield
    finally:
        for h in handles:
            h.remove()


def activations(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Outputs of the named layers for input `x`, computed in eval mode without gradients.

    `x` is moved to the model's device; its dtype is the caller's (a float64 model takes float64 images).
    """
    device = model_device(model, default=x.device)
    with torch.no_grad(), eval_mode(model), record(model, names) as acts:
        model(x.to(device))
    return dict(acts)


# ------------------------------------------------------------------------------------- for attributions


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and `requires_grad=False` on every parameter for the block, gradients enabled inside it;
    then each module's own mode and each parameter's own flag come back. Backpropagating to an input
    inside the block leaves no `.grad` on the model and changes no BatchNorm statistics."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        with eval_mode(model), torch.enable_grad():
            for p, _ in flags:
                p.requires_grad_(False)
            yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class _Tap(torch.autograd.Function):
    """Identity that hands its input on as a fresh tensor and keeps the gradient that comes back to it.

    A later in-place op (`ReLU(inplace=True)`) rewrites the fresh tensor, not the layer's own output, and
    the gradient this node receives is the one with respect to the layer's output before that op."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, store: dict, name: str) -> torch.Tensor:
        ctx.store, ctx.name = store, name
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        ctx.store[ctx.name] = grad
        return grad, None, None


@contextmanager
def taps(model: nn.Module, names: list[str], cut: bool = False
         ) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """Record the named layers' outputs (`values`, detached) and, after a backward pass, the gradient of
    the backpropagated quantity with respect to each of them (`grads`): what Grad-CAM needs.

    With `cut=True` the graph starts at the tapped outputs: each `values[name]` is a leaf that requires
    grad, so `torch.autograd.grad(score, values[name])` backpropagates only through the layers after it.

    Example:
        >>> with taps(model, ["features.conv2"]) as (values, grads):
        ...     model(x)[:, 3].sum().backward()
        >>> values["features.conv2"].shape == grads["features.conv2"].shape
        True
    """
    values: dict[str, torch.Tensor] = {}
    grads: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}
    handles = []

    def hook_for(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            calls[name] = calls.get(name, 0) + 1
            if calls[name] > 1:
                raise LayerReuseError(f"Layer {name!r} runs more than once per forward pass, so its output is "
                                      "ambiguous: choose a layer that runs once (a conv, or a module not reused).")
            values[name] = output.detach().requires_grad_(True) if cut else output.detach()
            return _Tap.apply(values[name] if cut else output, grads, name)
        return hook

    modules = {n: get_layer(model, n) for n in names}
    try:
        for n, m in modules.items():
            handles.append(m.register_forward_hook(hook_for(n)))
        handles.append(model.register_forward_pre_hook(lambda *_: calls.clear()))
        yield values, grads
    finally:
        for h in handles:
            h.remove()


# The ReLU rules of guided backpropagation and the deconvnet: how the gradient passes a ReLU.
RELU_RULES = ("guided", "deconvnet")
# Lucid's "redirected" ReLU gradient for feature visualisation: ordinary, except that an example whose gradient a
# ReLU stops entirely gets the gradient that would push its negative inputs up. Other nonlinearities keep theirs.
REDIRECT = "redirect"
_RELU = {F.relu, torch.relu, torch.Tensor.relu}
_RELU_INPLACE = {torch.relu_, torch.Tensor.relu_}
# Elementwise nonlinearities for which neither rule is defined: their use is an error, not an ordinary gradient.
_UNDEFINED = {F.gelu, F.silu, F.elu, F.selu, F.celu, F.leaky_relu, F.prelu, F.rrelu, F.hardtanh, F.relu6,
              F.softplus, F.mish, F.hardswish, F.hardsigmoid, F.logsigmoid, F.softsign, F.tanhshrink, F.threshold,
              F.glu, torch.sigmoid, torch.tanh, torch.Tensor.sigmoid, torch.Tensor.tanh, F.sigmoid, F.tanh}
_UNDEFINED_MODULES = (nn.GELU, nn.SiLU, nn.ELU, nn.SELU, nn.CELU, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.Hardtanh,
                      nn.ReLU6, nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.LogSigmoid,
                      nn.Softsign, nn.Tanhshrink, nn.Threshold, nn.GLU)


class _RuleReLU(torch.autograd.Function):
    """ReLU forward; backward by `rule`: "guided" passes max(g, 0) where the input was positive (Springenberg
    et al. 2015), "deconvnet" passes max(g, 0) whatever the input's sign (Zeiler & Fergus 2014), "redirect" passes
    g where the input was positive and, for an example where that is zero everywhere, g where the input was
    negative and g < 0 (the descent direction pushes the input up: Lucid's `redirected_relu_grad`)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rule: str, inplace: bool) -> torch.Tensor:
        ctx.rule = rule
        ctx.save_for_backward(x > 0, x < 0)
        if inplace:
            ctx.mark_dirty(x)
            return x.clamp_(min=0)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        positive, negative = ctx.saved_tensors
        if ctx.rule == REDIRECT:
            relu_grad = grad * positive
            pushed_up = grad * (negative & (grad < 0))
            if grad.ndim < 2:  # no batch dimension: one example
                return torch.where((relu_grad != 0).any(), relu_grad, pushed_up), None, None
            alive = relu_grad.flatten(1).ne(0).any(1)  # (B,): the ordinary gradient reaches this example
            return torch.where(alive.view(-1, *[1] * (grad.ndim - 1)), relu_grad, pushed_up), None, None
        grad = grad.clamp(min=0)
        return (grad * positive if ctx.rule == "guided" else grad), None, None


class _ReLURuleMode(TorchFunctionMode):
    """Routes every ReLU call (module, functional, method, in place or not) through `_RuleReLU` and refuses
    the elementwise nonlinearities the rule does not define, naming the module that called them."""

    def __init__(self, rule: str, where: list[str]) -> None:
        super().__init__()
        self.rule, self.where = rule, where

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _RELU or func in _RELU_INPLACE:
            inplace = func in _RELU_INPLACE or bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
            return _RuleReLU.apply(args[0], self.rule, inplace)
        if func in _UNDEFINED and self.rule != REDIRECT:
            where = f" in module {self.where[-1]!r}" if self.where and self.where[-1] else ""
            raise UserError(f"The forward pass calls {getattr(func, '__name__', func)}{where}, for which the "
                            f"{self.rule} rule is defined only on ReLUs: use a gradient method (saliency, "
                            "integrated gradients) on this model instead.")
        return func(*args, **kwargs)


@contextmanager
def relu_rule(model: nn.Module, rule: str) -> Iterator[None]:
    """Inside the block, every ReLU of `model`'s forward pass backpropagates by `rule` ("guided" or "deconvnet").

    It catches `nn.ReLU` (in place or not, a module called several times included), `F.relu`, `torch.relu`,
    `Tensor.relu` and `Tensor.relu_` through a `TorchFunctionMode`, so no module is swapped and nothing is
    patched globally; outside the block everything is as before. A model with another elementwise
    nonlinearity (GELU, SiLU, tanh, sigmoid, |x|, ...) is refused with the names of those modules: the rule is
    not defined for them, and an ordinary gradient there would be a silently different method. Clamps written
    by hand (`x.clamp(min=0)`) are not recognised as ReLUs.

    `rule="redirect"` (feature visualisation's, `REDIRECT`) changes only the ReLUs' gradient for examples that a
    ReLU would cut off entirely; every other nonlinearity keeps its ordinary gradient, so no model is refused.
    """
    if rule not in (*RELU_RULES, REDIRECT):
        raise UserError(f"Unknown ReLU rule {rule!r}: use {' or '.join(RELU_RULES)}.")
    odd = [] if rule == REDIRECT else [
        name or type(model).__name__ for name, m in model.named_modules()
        if isinstance(m, _UNDEFINED_MODULES) or getattr(m, "activation_kind", "relu") != "relu"]
    if odd:
        raise UserError(f"The {rule} rule is defined only on ReLUs, and this model has other activations in "
                        f"{', '.join(odd[:5])}{' …' if len(odd) > 5 else ''}: use a gradient method (saliency, "
                        "integrated gradients) on this model instead.")
    where: list[str] = []
    handles = []
    try:
        def enter(name: str) -> Callable[..., None]:
            return lambda *_: where.append(name)  # list.append returns None: the input stays as it is

        def leave(*_: Any) -> None:  # a forward hook's return value would replace the output
            where.pop()

        for name, m in model.named_modules():
            handles.append(m.register_forward_pre_hook(enter(name)))
            handles.append(m.register_forward_hook(leave))
        with _ReLURuleMode(rule, where):
            yield
    finally:
        for h in handles:
            h.remove()


__all__ = ["REDIRECT", "RELU_RULES", "activations", "conv_layers", "conv_weight", "eval_mode", "frozen", "get_layer",
           "model_device", "model_dtype", "record", "relu_rule", "taps", "trace_modules"]
