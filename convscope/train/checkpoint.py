"""Checkpoints: weights and optimizer state as safetensors, everything else as JSON.

Nothing is unpickled when a checkpoint loads: tensors go through safetensors, the rest (epoch,
resolved config, optimizer hyper-parameters, provenance) through JSON. A checkpoint directory holds

    model-EEEE.safetensors      the model's state_dict at the end of epoch EEEE
    optim-EEEE.safetensors      optimizer state tensors ("state.<param index>.<name>") and RNG state
    state.json                  {"epoch", "step", "config", "provenance", "param_groups", "files": [...]}

`state.json` is written last and atomically and names the files of its epoch, so a crash while saving
leaves the previous complete checkpoint in force; older epochs' files are removed afterwards, except the
model weights of every epoch when the run keeps them (`keep_epochs=True`, what a study of how features
evolve during training reads, Zeiler & Fergus 2014 Fig. 4): `epoch_weights(run_dir)` lists them and
`load_epoch_weights` reads one. The optimizer state is kept for the last epoch only (it is what a resume
needs, and it is twice the size of the weights under Adam).
"""

from __future__ import annotations

import json
import re
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
_MODEL_FILE = re.compile(r"model-(\d{4,})\.safetensors")


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
                    extra: dict[str, Any] | None = None, keep_epochs: bool = False) -> Path:
    """Save one epoch's checkpoint atomically; return the path of its state.json.

    Earlier epochs' files are removed once this one is in force; with `keep_epochs` their model weights stay.
    """
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
        if old.name not in state["files"] and not (keep_epochs and _epoch_of(old) is not None):
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


def epoch_weights(run_dir: str | Path) -> dict[int, Path]:
    """The model weights of each epoch a run kept, epoch -> file, in epoch order.

    `run_dir` is a run directory or its `checkpoint/` folder. Only epochs up to the one in force (state.json)
    count: a file written by an epoch that crashed before its state was saved is ignored. A run trained
    without `keep_epochs` lists its last epoch only; no checkpoint at all gives {}.

    Example:
        >>> weights = epoch_weights("runs/zf")          # {1: .../model-0001.safetensors, 2: ...}
        >>> model.load_state_dict(load_epoch_weights(weights[1]))
    """
    ckpt_dir = Path(run_dir)
    if not has_checkpoint(ckpt_dir) and has_checkpoint(ckpt_dir / "checkpoint"):
        ckpt_dir = ckpt_dir / "checkpoint"
    if not has_checkpoint(ckpt_dir):
        return {}
    try:
        last = int(read_json(ckpt_dir / STATE)["epoch"])
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise CheckpointError(f"The checkpoint in {ckpt_dir} is unreadable ({_short(e)}): delete that directory "
                              "and train again (or use --retrain).") from None
    found = {e: p for p in ckpt_dir.glob("model-*.safetensors") if (e := _epoch_of(p)) is not None and e <= last}
    return dict(sorted(found.items()))


def load_epoch_weights(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The model state_dict saved in one epoch's weights file (an `epoch_weights` value)."""
    try:
        state = _read_tensors(Path(path))
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"The weights file {path} is unreadable ({_short(e)}): it is truncated or corrupt; "
                              "train the run again.") from None
    return {k: v.to(map_location) for k, v in state.items()}


def _epoch_of(path: Path) -> int | None:
    m = _MODEL_FILE.fullmatch(path.name)
    return int(m.group(1)) if m else None


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
