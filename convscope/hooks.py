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

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass
class LeafCall:
    """One call of a leaf module in a traced forward pass: what came in and went out (kept alive, so `is`
    compares them) and their versions (so an in-place change between two calls is seen)."""

    name: str
    module: nn.Module
    inputs: tuple
    in_version: int
    output: Any = None
    out_version: int = -1
    note: Any = None  # what an `on_leaf` callback keeps (the deconvnet: a max pool's switches)


class LeafTrace:
    """Follows one forward pass (`trace_modules(model, trace.pre, trace.post)`): the leaf module calls in order,
    each module's span of leaf calls, the output of `target` (cloned as it came out) and the model's output.

    The instruments that walk a model down layer by layer (the deconvnet projection, receptive fields) use it to
    check the model is a chain of layers there (`chain_break`) and to find where a layer's output was made
    (`top_of`). `on_leaf(call)` runs before each leaf does (the deconvnet records max-pool switches there).
    """

    def __init__(self, model: nn.Module, target: str | None = None,
                 on_leaf: Callable[[LeafCall], None] | None = None) -> None:
        self.names = {id(m): n for n, m in model.named_modules()}
        self.leaves = {id(m) for m in model.modules() if next(m.children(), None) is None}
        self.target, self.on_leaf = target, on_leaf
        self.calls: list[LeafCall] = []
        self.spans: dict[str, list[tuple[int, int]]] = {}  # module name -> (first, end) leaf call of each call
        self.value: torch.Tensor | None = None  # the target module's output, cloned as it came out
        self.raw: tuple[Any, int] = (None, -1)  # the target's output itself and its version, to compare
        self.output: Any = None  # the model's output
        self._open: list[int] = []  # leaf counts at each module call in progress

    def pre(self, module: nn.Module, inputs: tuple) -> None:
        self._open.append(len(self.calls))
        if id(module) in self.leaves:
            x = inputs[0] if len(inputs) == 1 and isinstance(inputs[0], torch.Tensor) else None
            call = LeafCall(self.names[id(module)], module, inputs, x._version if x is not None else -1)
            if self.on_leaf is not None:
                self.on_leaf(call)
            self.calls.append(call)

    def post(self, name: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        start = self._open.pop()
        if id(module) in self.leaves:
            call = self.calls[start]
            call.output, call.out_version = output, getattr(output, "_version", -1)
        self.spans.setdefault(name, []).append((start, len(self.calls)))
        if name == self.target and isinstance(output, torch.Tensor):
            self.value = output.detach().clone()  # before any later in-place op rewrites it
            self.raw = (output, output._version)
        if name == "":
            self.output = output

    def chain_break(self, x: torch.Tensor, top: int) -> tuple[LeafCall, str] | None:
        """The first leaf call among 0..top (walking down) that does not take exactly the unmodified output of
        the call before it (or `x`, for the first), and what it should have taken; None for a chain."""
        for i in range(top, -1, -1):
            call = self.calls[i]
            before, version = (x, x._version) if i == 0 else (self.calls[i - 1].output, self.calls[i - 1].out_version)
            if len(call.inputs) != 1 or call.inputs[0] is not before or call.in_version != version:
                came = "the model's input" if i == 0 else f"the output of {self.calls[i - 1].name!r}, the module " \
                                                          "that ran before it"
                return call, came
        return None

    def top_of(self, layer: str, instrument: str) -> int:
        """Index of the leaf call whose output is `layer`'s output (where a walk down starts); `instrument` names
        the caller in the error raised when the layer did not run, ran more than once, or computes its output
        outside its child modules."""
        spans = self.spans.get(layer, [])
        if not spans:
            raise UserError(f"Layer {layer!r} did not run in the forward pass: choose a layer the model calls.")
        if len(spans) > 1:
            raise LayerReuseError(f"Layer {layer!r} runs more than once per forward pass, so it has no one output "
                                  f"for {instrument}: choose a layer that runs once.")
        start, end = spans[0]
        last = self.calls[end - 1] if end > start else None
        if last is None or self.raw[0] is not last.output or self.raw[1] != last.out_version:
            raise UserError(f"Layer {layer!r} computes its output outside its child modules, so {instrument} cannot "
                            "walk down from it: choose one of its child layers.")
        return end - 1


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
    """Record the named layers' outputs (`values`) and, after a backward pass, the gradient of the
    backpropagated quantity with respect to each of them (`grads`): what Grad-CAM needs.

    `torch.autograd.grad(score, values[name])` backpropagates only through the layers after the tap. The
    network goes on with a copy of each tapped output, so an in-place op after the layer leaves
    `values[name]` as the layer computed it. With `cut=True` the graph also starts at the tapped outputs:
    each `values[name]` is a leaf, and nothing before it is differentiated.

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
            values[name] = output.detach().requires_grad_(True) if cut else output
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
# Modules that act on each position of a map alone (the same map size out as in; BatchNorm in eval mode): the
# receptive-field walk and the incremental occlusion engine pass them by.
POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                     nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.PReLU,
                     nn.Identity, nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.FeatureAlphaDropout,
                     nn.LocalResponseNorm)
_RELU = {F.relu, torch.relu, torch.Tensor.relu}
_RELU_INPLACE = {torch.relu_, torch.Tensor.relu_}
# Elementwise nonlinearities for which neither rule is defined: their use is an error, not an ordinary gradient.
_UNDEFINED = {F.gelu, F.silu, F.elu, F.selu, F.celu, F.leaky_relu, F.prelu, F.rrelu, F.hardtanh, F.relu6,
              F.softplus, F.mish, F.hardswish, F.hardsigmoid, F.logsigmoid, F.softsign, F.tanhshrink, F.threshold,
              F.glu, torch.sigmoid, torch.tanh, torch.Tensor.sigmoid, torch.Tensor.tanh, F.sigmoid, F.tanh}
# Every elementwise nonlinearity a forward pass may call as a function (the ReLUs and the rest).
NONLINEAR_FUNCTIONS = frozenset(_RELU | _RELU_INPLACE | _UNDEFINED)
_UNDEFINED_MODULES = (nn.GELU, nn.SiLU, nn.ELU, nn.SELU, nn.CELU, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.Hardtanh,
                      nn.ReLU6, nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.LogSigmoid,
                      nn.Softsign, nn.Tanhshrink, nn.Threshold, nn.GLU)


class _RuleReLU(torch.autograd.Function):
    """ReLU forward; backward by `rule`: "guided" passes max(g, 0) where the input was positive (Springenberg
    et al. 2015), "deconvnet" passes max(g, 0) whatever the input's sign (Zeiler & Fergus 2014), "redirect" passes
    g where the input was positive and, for an example where that is zero everywhere, g where the input was
    negative and g < 0 (the descent direction pushes the input up: Lucid's `redirected_relu_grad`)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, state: _ReLURuleMode, inplace: bool) -> torch.Tensor:
        ctx.state = state  # the rule is read at backward time: one forward pass can serve two rules
        ctx.save_for_backward(x > 0, x < 0)
        if inplace:
            ctx.mark_dirty(x)
            return x.clamp_(min=0)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        positive, negative = ctx.saved_tensors
        rule = ctx.state.rule
        if rule == "ordinary":
            return grad * positive, None, None
        if rule == REDIRECT:
            relu_grad = grad * positive
            pushed_up = grad * (negative & (grad < 0))
            if grad.ndim < 2:  # no batch dimension: one example
                return torch.where((relu_grad != 0).any(), relu_grad, pushed_up), None, None
            alive = relu_grad.flatten(1).ne(0).any(1)  # (B,): the ordinary gradient reaches this example
            return torch.where(alive.view(-1, *[1] * (grad.ndim - 1)), relu_grad, pushed_up), None, None
        grad = grad.clamp(min=0)
        return (grad * positive if rule == "guided" else grad), None, None


class _ReLURuleMode(TorchFunctionMode):
    """Routes every ReLU call (module, functional, method, in place or not) through `_RuleReLU` and refuses
    the elementwise nonlinearities the rule does not define, naming the module that called them."""

    def __init__(self, rule: str, names: dict[int, str]) -> None:
        super().__init__()
        self.rule, self.names = rule, names

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _RELU or func in _RELU_INPLACE:
            if self.rule == "guided":
                # The guided rule is max(g, 0) passed through ReLU's own backward (which keeps x > 0): a hook on
                # the output does it with the native kernels, cheaper than a Python autograd Function.
                out = func(*args, **kwargs)
                if out.requires_grad:
                    out.register_hook(self._guided_hook)
                return out
            inplace = func in _RELU_INPLACE or bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
            return _RuleReLU.apply(args[0], self, inplace)
        if func in _UNDEFINED and self.rule != REDIRECT:
            name = self.caller()
            where = f" in module {name!r}" if name else ""
            raise UserError(f"The forward pass calls {getattr(func, '__name__', func)}{where}, for which the "
                            f"{self.rule} rule is defined only on ReLUs: use a gradient method (saliency, "
                            "integrated gradients) on this model instead.")
        return func(*args, **kwargs)

    def _guided_hook(self, grad: torch.Tensor) -> torch.Tensor:
        # The rule is read at backward time ("ordinary" between two passes of guided Grad-CAM).
        return grad.clamp(min=0) if self.rule == "guided" else grad

    def caller(self) -> str:
        """The innermost module of the model whose `forward` is on the call stack (read only for an error
        message, so that the ordinary forward pass carries no per-module hooks)."""
        frame = inspect.currentframe()
        while frame is not None:
            name = self.names.get(id(frame.f_locals.get("self")))
            if name:
                return name
            frame = frame.f_back
        return ""


@contextmanager
def relu_rule(model: nn.Module, rule: str) -> Iterator[_ReLURuleMode]:
    """Inside the block, every ReLU of `model`'s forward pass backpropagates by `rule` ("guided" or "deconvnet").

    It catches `nn.ReLU` (in place or not, a module called several times included), `F.relu`, `torch.relu`,
    `Tensor.relu` and `Tensor.relu_` through a `TorchFunctionMode`, so no module is swapped and nothing is
    patched globally; outside the block everything is as before. A model with another elementwise
    nonlinearity (GELU, SiLU, tanh, sigmoid, |x|, ...) is refused with the names of those modules: the rule is
    not defined for them, and an ordinary gradient there would be a silently different method. Clamps written
    by hand (`x.clamp(min=0)`) are not recognised as ReLUs.

    The block yields an object whose `rule` is read when the graph is differentiated: set it to "ordinary"
    between two backward passes of one forward pass to get the plain gradient (guided Grad-CAM needs both).

    `rule="redirect"` (feature visualisation's, `REDIRECT`) changes only the ReLUs' gradient for examples that a
    ReLU would cut off entirely; every other nonlinearity keeps its ordinary gradient, so no model is refused.
    """
    if rule not in (*RELU_RULES, REDIRECT):
        raise UserError(f"Unknown ReLU rule {rule!r}: use {' or '.join(RELU_RULES)}.")
    modules = dict(model.named_modules())
    odd = [] if rule == REDIRECT else [
        name or type(model).__name__ for name, m in modules.items()
        if isinstance(m, _UNDEFINED_MODULES) or getattr(m, "activation_kind", "relu") != "relu"]
    if odd:
        raise UserError(f"The {rule} rule is defined only on ReLUs, and this model has other activations in "
                        f"{', '.join(odd[:5])}{' …' if len(odd) > 5 else ''}: use a gradient method (saliency, "
                        "integrated gradients) on this model instead.")
    with _ReLURuleMode(rule, {id(m): name for name, m in modules.items()}) as mode:
        yield mode


__all__ = ["NONLINEAR_FUNCTIONS", "POINTWISE_MODULES", "REDIRECT", "RELU_RULES", "LeafCall", "LeafTrace",
           "activations", "conv_layers", "conv_weight", "eval_mode", "frozen", "get_layer", "model_device",
           "model_dtype", "record", "relu_rule", "taps", "trace_modules"]
