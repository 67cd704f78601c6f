"""The "model left exactly as found" check, written once (docs/DESIGN.md contract) and used by every test of an
instrument that takes a user's model.

`snapshot(model)` records everything an instrument must not change: parameters and buffers (bit for bit),
the modules, every kind of hook, each module's own train/eval flag, `requires_grad` and `.grad` of each
parameter, the global autograd mode and the global random state. `assert_untouched(model, before)` compares.
"""

from __future__ import annotations

import torch


def _hooks(model: torch.nn.Module) -> int:
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
             "_state_dict_hooks", "_load_state_dict_pre_hooks")
    n = sum(len(getattr(m, k, {})) for m in model.modules() for k in kinds)
    # tensor hooks left on parameters
    return n + sum(len(p._backward_hooks or {}) for p in model.parameters())


def snapshot(model: torch.nn.Module) -> dict:
    """What must not change when an instrument runs on `model`."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "modules": [(n, type(m), id(m)) for n, m in model.named_modules(remove_duplicate=False)],
        "hooks": _hooks(model),
        "modes": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "grad_enabled": torch.is_grad_enabled(),
        "inference_mode": torch.is_inference_mode_enabled(),
        "rng": torch.get_rng_state(),
        "dtypes": [t.dtype for t in model.state_dict().values()],
    }


def assert_untouched(model: torch.nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["modules"] == before["modules"], "modules were replaced or moved"
    assert after["hooks"] == before["hooks"] == 0, "hooks were left on the model"
    assert after["modes"] == before["modes"], "a module's train/eval flag changed"
    assert after["requires_grad"] == before["requires_grad"], "requires_grad changed"
    assert after["dtypes"] == before["dtypes"], "a parameter or buffer changed dtype"
    for a, b in zip(after["grad"], before["grad"], strict=True):
        assert (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b)), ".grad changed"
    assert after["grad_enabled"] == before["grad_enabled"], "the global autograd mode changed"
    assert after["inference_mode"] == before["inference_mode"], "inference mode changed"
    assert torch.equal(after["rng"], before["rng"]), "the global random state changed"
    assert after["state"].keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(after["state"][k], v), f"{k} changed"
