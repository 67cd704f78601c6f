"""Checkpoints: weights and optimizer state as safetensors, everything else as JSON.

Nothing is unpickled when a checkpoint loads: tensors go through safetensors, the rest (epoch,
resolved config, optimizer hyper-parameters, provenance) through JSON. A checkpoint directory holds

    model-EEEE.safetensors      the model's state_dict at the end of epoch EEEE
    optim-EEEE.safetensors      optimizer state tensors ("state.<param index>.<name>") and RNG state
    state.json                  {"epoch", "step", "config", "provenance", "param_groups", "files": [...]}

`state.json` is written last and atomically and names the files of its epoch, so a crash while saving
leaves the previous complete checkpoint in force; older epochs' files are removed afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from convscope.errors import CheckpointError
from convscope.io import atomic_write_bytes, read_json, write_json

STATE = "state.json"


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns: tensors plus the JSON metadata."""

    epoch: int
    step: int
    config: dict[str, Any]
    provenance: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    rng_state: torch.Tensor | None
    extra: dict[str, Any]


def save_checkpoint(ckpt_dir: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    epoch: int, step: int, config: dict[str, Any], provenance: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> Path:
    """Save one epoch's checkpoint atomically; return the path of its state.json."""
    ckpt_dir = Path(ckpt_dir)
    model_file, optim_file = f"model-{epoch:04d}.safetensors", f"optim-{epoch:04d}.safetensors"
    weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(ckpt_dir / model_file, st_save(weights))

    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    param_groups: list[dict[str, Any]] = []
    if optimizer is not None:
        sd = optimizer.state_dict()
        for idx, pstate in sd["state"].items():
            for name, value in pstate.items():
                # Adam keeps "step" as a 0-d tensor; store every entry as a tensor so nothing is pickled.
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"state.{idx}.{name}"] = t.detach().to("cpu").contiguous()
        param_groups = sd["param_groups"]
    atomic_write_bytes(ckpt_dir / optim_file, st_save(tensors))

    state = {
        "epoch": epoch,
        "step": step,
        "config": config,
        "provenance": provenance,
        "param_groups": param_groups,
        "has_optimizer": optimizer is not None,
        "extra": extra or {},
        "files": [model_file, optim_file],
    }
    path = write_json(ckpt_dir / STATE, json.loads(json.dumps(state, default=_jsonable)))
    for old in ckpt_dir.glob("*-*.safetensors"):  # drop earlier epochs only once the new state is in force
        if old.name not in state["files"]:
            old.unlink(missing_ok=True)
    return path


def has_checkpoint(ckpt_dir: str | Path) -> bool:
    return (Path(ckpt_dir) / STATE).is_file()


def load_checkpoint(ckpt_dir: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint; a missing, truncated or corrupt one raises CheckpointError."""
    ckpt_dir = Path(ckpt_dir)
    state_path = ckpt_dir / STATE
    if not state_path.is_file():
        raise CheckpointError(f"No checkpoint in {ckpt_dir}: train first, or point at a run directory "
                              "that holds checkpoint/state.json.")
    try:
        state = read_json(state_path)
        model_file, optim_file = state["files"]
        model_state = _read_tensors(ckpt_dir / model_file)
        tensors = _read_tensors(ckpt_dir / optim_file)
    except (ValueError, KeyError, TypeError, OSError, SafetensorError) as e:
        raise CheckpointError(f"The checkpoint in {ckpt_dir} is unreadable ({_short(e)}): it is truncated or "
                              "corrupt; delete that directory and train again (or use --retrain).") from None
    model_state = {k: v.to(map_location) for k, v in model_state.items()}
    optimizer_state = None
    if state.get("has_optimizer"):
        per_param: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("state."):
                _, idx, name = key.split(".", 2)
                per_param.setdefault(int(idx), {})[name] = value
        optimizer_state = {"state": per_param, "param_groups": state["param_groups"]}
    return Checkpoint(
        epoch=state["epoch"], step=state["step"], config=state["config"], provenance=state["provenance"],
        model_state=model_state, optimizer_state=optimizer_state, rng_state=tensors.get("rng.torch"),
        extra=state.get("extra", {}),
    )


def restore(ckpt: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Load a checkpoint's weights (and optimizer and RNG state) into live objects."""
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as e:
        raise CheckpointError(f"The checkpoint does not fit this model ({_short(e)}): it was saved from "
                              f"{ckpt.config.get('model')!r} with {ckpt.config.get('model_args', {})}.") from None
    if optimizer is not None and ckpt.optimizer_state is not None:
        device = next(model.parameters()).device
        optimizer.load_state_dict(ckpt.optimizer_state)
        for pstate in optimizer.state.values():
            for name, value in pstate.items():
                # Adam's "step" counter must stay on the CPU; moment buffers follow the parameters.
                if torch.is_tensor(value) and name != "step":
                    pstate[name] = value.to(device)
    if ckpt.rng_state is not None:
        torch.set_rng_state(ckpt.rng_state)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    return st_load(path.read_bytes())


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:120]


def _jsonable(obj: Any) -> Any:
    if torch.is_tensor(obj):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, tuple | set):
        return list(obj)
    return str(obj)
