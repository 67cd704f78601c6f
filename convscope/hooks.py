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
from torch import nn

from convscope.errors import LayerReuseError, unknown_name


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


__all__ = ["activations", "conv_layers", "conv_weight", "eval_mode", "get_layer", "model_device", "model_dtype",
           "record", "trace_modules"]
