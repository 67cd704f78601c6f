"""A tiny model registry: `register_model`, `create_model`, `list_models`.

Modelled on timm's `_factory.create_model`: a model file registers plain constructor functions by
name, and generic code builds models only through `create_model`, never by importing a class.
`model_arguments` reads what a model can be built with from the signatures (the factory's keywords
and, where it passes `**kwargs` on, those of the class it returns), so `create_model` refuses an
unknown argument with the valid ones named and converts `--set` strings to each argument's type.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

from convscope.config import coerce
from convscope.errors import ArgumentError, unknown_name

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
    """Build a registered model by name; `cfg` holds its arguments (`model_arguments(name)` lists them).

    Raises:
        UserError: an unknown model or argument, or a value of the wrong type.

    Example:
        >>> model = create_model("lenet5", num_classes=10)
        >>> model(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 10])
    """
    kwargs = model_kwargs(name, cfg)
    return _REGISTRY[name](**kwargs)


def model_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` checked against model `name`'s arguments and converted to their types (`create_model`'s first step).

    Raises:
        ArgumentError: an argument the model does not take (the valid ones are named).
        UserError: a value of the wrong type.
    """
    args = model_arguments(name)
    if args is None:
        return dict(kwargs)
    wrong = sorted(set(kwargs) - set(args))
    if wrong:
        raise ArgumentError(f"Model {name} has no argument {', '.join(map(repr, wrong))}: it takes "
                        f"{', '.join(args) or 'none'}.")
    # Strings from --set become numbers; a value of the right type is left alone ("none" stays a name).
    return {k: v if _fits(v, args[k].annotation) else coerce(k, v, args[k].annotation) for k, v in kwargs.items()}


def model_arguments(name: str) -> dict[str, inspect.Parameter] | None:
    """The keyword arguments of model `name`, in signature order, with their defaults and (resolved) types.

    None when they cannot be read (a factory taking `**kwargs` without a class to pass them to).
    """
    _load_builtin_models()
    if name not in _REGISTRY:
        raise unknown_name("model", name, _REGISTRY)
    fn = _REGISTRY[name]
    params, hints = _keywords(fn, fn)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
        cls = hints.get("return")
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            return None
        for key, p in _keywords(cls.__init__, cls, keyword_only=True)[0].items():
            params.setdefault(key, p)
    return params


def _fits(value: Any, tp: Any) -> bool:
    if tp is inspect.Parameter.empty or tp is Any:
        return True
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is typing.Literal:
        return value in typing.get_args(tp)
    if tp is type(None):
        return value is None
    if isinstance(tp, type):
        return isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool))
    return True  # a generic we do not check (tuple[int, ...], ...): the constructor's own concern


def _keywords(fn: Callable[..., Any], owner: Any, keyword_only: bool = False
              ) -> tuple[dict[str, inspect.Parameter], dict[str, Any]]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an unresolvable annotation only costs the conversion
        hints = {}
    kinds = (inspect.Parameter.KEYWORD_ONLY,) if keyword_only else (
        inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = {p.name: p.replace(annotation=hints.get(p.name, inspect.Parameter.empty))
              for p in inspect.signature(fn).parameters.values() if p.kind in kinds and p.name != "self"}
    return params, hints


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_builtin_models()
    return sorted(_REGISTRY)


def _load_builtin_models() -> None:
    # Importing the package runs every model file's @register_model decorators.
    import convscope.models  # noqa: F401
