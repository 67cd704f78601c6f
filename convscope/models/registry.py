"""A tiny model registry: `register_model`, `create_model`, `list_models`.

Modelled on timm's `_factory.create_model`: a model file registers plain constructor functions by
name, and generic code builds models only through `create_model`, never by importing a class.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from convscope.errors import unknown_name

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a constructor under `name` (decorator)."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def create_model(name: str, **cfg: object) -> nn.Module:
    """Build a registered model by name.

    Example:
        >>> model = create_model("lenet5", num_classes=10)
        >>> model(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 10])
    """
    _load_builtin_models()
    if name not in _REGISTRY:
        raise unknown_name("model", name, _REGISTRY)
    return _REGISTRY[name](**cfg)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_builtin_models()
    return sorted(_REGISTRY)


def _load_builtin_models() -> None:
    # Importing the package runs every model file's @register_model decorators.
    import convscope.models  # noqa: F401
