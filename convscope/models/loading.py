"""A model by reference, and its weights: what every command that takes a model accepts.

A reference is one of
- a zoo name (`lenet5`, `vgg16`, … — `convscope.list_models()`);
- `path/to/file.py:factory`, a function (or class) in a Python file of yours that returns an `nn.Module`;
- `package.module:factory`, the same in an importable module.

Weights come from a safetensors file or a PyTorch state dict, read with `torch.load(weights_only=True)`,
which never unpickles arbitrary objects. Zoo AlexNet, VGG and GoogLeNet also read torchvision-format
ImageNet state dicts (`features.0.weight` …, GoogLeNet's `inception3a.branch2.0.conv.weight` …): their keys
are mapped onto the zoo's names by the layer order and checked by shape (GoogLeNet's auxiliary classifiers
are dropped). A reference that cannot be resolved, a factory that is missing or fails, and weights that
do not fit (the first mismatching key and its shapes are named) are `UserError`s.

Example:
    >>> model = load_model("vgg16", weights="vgg16-397923af.pth")          # torchvision's file
    >>> model = load_model("my_nets.py:small_cnn", num_classes=10)         # a factory of yours
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pickle
import re
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convscope.errors import UserError
from convscope.models.registry import create_model, list_models


def resolve_factory(ref: str) -> tuple[Callable[..., nn.Module], bool]:
    """The constructor a reference names, and whether it is a zoo model."""
    if ":" not in ref:
        if ref in list_models():
            return (lambda **kw: create_model(ref, **kw)), True
        create_model(ref)  # raises the unknown-name error with suggestions
    where, _, attr = ref.rpartition(":")
    if not where or not attr.isidentifier():
        raise UserError(f"Model reference {ref!r} is not a zoo name, path/file.py:factory or package.module:factory.")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _import_file(Path(where).expanduser(), ref)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise UserError(f"Cannot import module {where!r} of model reference {ref!r} ({e}): check the name, or "
                            "give a file as path/to/file.py:factory.") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
        raise UserError(f"{where} has no factory {attr!r}: it defines {', '.join(sorted(names)) or 'no functions'}.")
    return factory, False


def _import_file(path: Path, ref: str) -> Any:
    if not path.is_file():
        raise UserError(f"Model file {path} of reference {ref!r} does not exist: check the path.")
    name = "convscope_user_" + re.sub(r"\W", "_", str(path.resolve()))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path} cannot be imported as Python: give a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's file: report its error in one sentence
        sys.modules.pop(name, None)
        raise UserError(f"Importing {path} failed with {type(e).__name__}: {e}.") from None
    return module


def build(ref: str, **kwargs: Any) -> nn.Module:
    """Call the reference's constructor. A factory of yours gets only the keyword arguments its signature takes
    (so `in_channels`/`num_classes` from a dataset are passed when it accepts them and left out otherwise)."""
    factory, zoo = resolve_factory(ref)
    if not zoo:
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in params}
    try:
        model = factory(**kwargs)
    except UserError:
        raise
    except TypeError as e:
        raise UserError(f"Model {ref!r} does not take these arguments ({e}): check the --set model_args.") from None
    except Exception as e:  # noqa: BLE001 - the user's factory: one sentence, no traceback
        raise UserError(f"Building model {ref!r} failed with {type(e).__name__}: {e}.") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"Factory {ref!r} returned {type(model).__name__}, not an nn.Module.")
    return model


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file or a torch file (read with weights_only=True)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"Weights file {path} does not exist: check the path given with --weights.")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"{path} is not a readable safetensors file ({e}).") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile,
            AttributeError) as e:
        raise UserError(f"{path} is not a state dict torch can read safely ({str(e).splitlines()[0][:200]}): save "
                        "model.state_dict() with torch.save, or use safetensors.") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]  # a training checkpoint that wraps its state dict
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors: save model.state_dict().")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel's prefix


# ------------------------------------------------------------------------------------- torchvision keys

_TV_GOOGLENET = [(r"^(conv[123]|inception\w+)\.", r"features.\1."), (r"\.branch([23])\.0\.", r".branch\1.reduce."),
                 (r"\.branch([23])\.1\.", r".branch\1.conv."), (r"\.branch4\.1\.", r".branch4.proj."),
                 (r"^fc\.", "classifier.fc.")]


def from_torchvision(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor] | None:
    """`state` renamed onto `model`'s keys when it is a torchvision-format state dict of the same network, else
    None. AlexNet/VGG: conv and linear parameters are paired in order; GoogLeNet: renamed by rule."""
    ours = model.state_dict()
    if set(state) <= set(ours):
        return None  # already in our names
    if any(k.startswith("inception3a.") for k in state):
        renamed = {}
        for k, v in state.items():
            if k.startswith(("aux1.", "aux2.")):
                continue  # the auxiliary classifiers of training, which the zoo's GoogLeNet leaves out
            for pattern, repl in _TV_GOOGLENET:
                k = re.sub(pattern, repl, k)
            renamed[k] = v
        return renamed
    if not any(re.match(r"^(features|classifier)\.\d+\.", k) for k in state):
        return None
    def order(key: str) -> tuple[int, int, int]:  # features before classifier, by index, weight before bias
        part, index, kind = key.split(".", 2)
        return (part != "features", int(index), kind != "weight")

    if not all(re.match(r"^(features|classifier)\.\d+\.(weight|bias)$", k) for k in state):
        return None
    theirs = sorted(state, key=order)
    # parameters of ours in registration order, skipping buffers
    params = [k for k, _ in model.named_parameters()]
    if len(theirs) != len(params):
        return None
    return {mine: state[k] for mine, k in zip(params, theirs, strict=True)}


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load `path` into `model` in place (torchvision-format keys mapped for the zoo) and return it."""
    state = read_state_dict(path)
    mapped = from_torchvision(state, model)
    state = mapped if mapped is not None else state
    ours = model.state_dict()
    extra = [k for k in state if k not in ours]
    shapes = [k for k in state if k in ours and ours[k].shape != state[k].shape]
    missing = [k for k in ours if k not in state and not k.endswith("num_batches_tracked")]
    if extra or shapes or missing:
        if shapes:
            k = shapes[0]
            first = f"its {k!r} has shape {tuple(state[k].shape)} where the model has {tuple(ours[k].shape)}"
        elif extra:
            first = f"it has {extra[0]!r} {tuple(state[extra[0]].shape)}, for which the model has no place"
        else:
            first = f"it lacks the model's {missing[0]!r} {tuple(ours[missing[0]].shape)}"
        only_head = not extra and not missing and len(shapes) <= 2 and all(k.startswith(shapes[0].rsplit(".", 1)[0])
                                                                          for k in shapes)
        hint = ("build the model with the settings the weights were trained with (e.g. --set num_classes=…)"
                if only_head else f"{len(extra) + len(shapes) + len(missing)} weights differ, so the file is for "
                "another model")
        raise UserError(f"{path} does not fit the model: {first}; {hint}.")
    model.load_state_dict(state, strict=False)
    return model


def load_model(ref: str, weights: str | Path | None = None, **kwargs: Any) -> nn.Module:
    """The model a reference names, built with `kwargs`, with `weights` loaded when given."""
    model = build(ref, **kwargs)
    return load_weights(model, weights) if weights is not None else model


__all__ = ["build", "from_torchvision", "load_model", "load_weights", "read_state_dict", "resolve_factory"]
