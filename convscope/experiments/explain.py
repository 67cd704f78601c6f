"""`reproduce explain`: every explanation method on one trained model, and how good each one is.

For a trained model (a run directory's checkpoint, what `convscope lab` passes; else a model reference with
weights; else LeNet-5 trained here on MNIST with the fast recipe), on its test set:

1. the maps of every method of `convscope.explain` for a dozen test images, half predicted right and half
   wrong where the model makes enough mistakes, each explaining the predicted class;
2. deletion and insertion curves (Petsiuk et al., RISE, BMVC 2018) of every method over `metric_images`
   test images, and their areas (lower is better for deletion, higher for insertion);
3. the cascading model-randomisation check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS
   2018): each method's maps after re-drawing the layers from the top, as Spearman rank correlations with
   the original maps. The paper finds guided backpropagation and guided Grad-CAM barely change, gradients
   and Grad-CAM do (docs/REFERENCE.md §9).

The Result holds arrays only; `report/pages/explain.py` draws the grid, the curves and the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from convscope.config import TrainConfig
from convscope.errors import UserError
from convscope.experiments import register_experiment
from convscope.explain import LAYER_METHODS, SAME_CLASS_MAP, create_method, list_methods
from convscope.explain.metrics import deletion_insertion, randomization_check
from convscope.hooks import conv_layers
from convscope.models.loading import load_model
from convscope.result import Published, Result, provenance
from convscope.train.loop import fit, resolve_device
from convscope.train.run import build_model, load_data, model_of_run

ADEBAYO = "Adebayo et al., NeurIPS 2018 (docs/REFERENCE.md §9)"
RISE = "Petsiuk, Das and Saenko, BMVC 2018 (docs/REFERENCE.md §9)"
# Options that keep each method's cost in line with the others on a CPU.
SETUP: dict[str, dict[str, Any]] = {"smoothgrad": {"n": 16, "sigma": 0.15}, "vargrad": {"n": 16, "sigma": 0.15},
                                    "occlusion": {"window": 4, "stride": 2}}


@dataclass
class ExplainConfig:
    """Which model, which images, and the sizes of the quality measures."""

    run: str | None = None  # a run directory whose checkpoint is explained
    model: str = "lenet5"  # else a model reference (zoo name, path/file.py:factory), with `weights`
    weights: str | None = None
    methods: list[str] = field(default_factory=lambda: [m for m in list_methods() if m not in SAME_CLASS_MAP])
    layer: str | None = None  # the CAM methods' layer (default: the last conv layer)
    images: int = 12
    metric_images: int = 64
    sanity_images: int = 8
    steps: int = 16  # deletion/insertion steps
    substitute: str = "blur"
    seed: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(model="lenet5", data="mnist"))

    @classmethod
    def lab(cls) -> ExplainConfig:
        """`convscope lab`'s size: the lab's own model (the lab sets `run`), fewer images for the metrics."""
        return cls(metric_images=32, sanity_images=4)


def _model_and_data(cfg: ExplainConfig, progress: bool) -> tuple[nn.Module, Any, dict, str]:
    """The model to explain, the test tensors, the data's description and where the model came from."""
    if cfg.run is not None:
        model, _, _, test, info = model_of_run(cfg.run, str(resolve_device(cfg.train.device)), progress=progress)
        return model, test, info, f"the checkpoint of run {cfg.run}"
    train, test, info = load_data(cfg.train, progress=progress)
    device = resolve_device(cfg.train.device)
    if cfg.weights is not None or cfg.model != cfg.train.model:
        model = load_model(cfg.model, weights=cfg.weights, in_channels=train[0].shape[1],
                           num_classes=len(info["classes"])).to(device)
        return model, test, info, f"{cfg.model} with weights {cfg.weights}"
    model = build_model(cfg.train, train[0].shape[1], len(info["classes"]), device)
    fit(model, train, test, cfg.train, progress=progress)
    return model, test, info, f"{cfg.train.model} trained here on {cfg.train.data} ({cfg.train.epochs} epochs)"


def _pick(pred: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n test indices, half predicted right and half wrong (more right ones if there are too few wrong)."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    right = order[(pred[order] == y[order])]
    wrong = order[(pred[order] != y[order])]
    k = min(len(wrong), n // 2)
    return torch.cat([right[: n - k], wrong[:k]])


@register_experiment("explain", "Explanations: every method, deletion/insertion and the sanity check", ExplainConfig)
def run(cfg: ExplainConfig, out_dir: Path, progress: bool = True) -> Result:
    t0 = time.perf_counter()
    unknown = sorted(set(cfg.methods) - set(list_methods()))
    if unknown:
        raise UserError(f"Unknown explanation methods {', '.join(unknown)}: choose from {', '.join(list_methods())}.")
    model, (x_test, y_test), info, origin = _model_and_data(cfg, progress)
    model.eval()
    device = next(model.parameters()).device
    layer = cfg.layer or (conv_layers(model) or [None])[-1]
    with torch.no_grad():
        pred = torch.cat([model(x_test[i:i + 1000].to(device)).argmax(1).cpu() for i in range(0, len(x_test), 1000)])
    shown = _pick(pred, y_test, cfg.images, cfg.seed)
    metric_idx = torch.randperm(len(y_test), generator=torch.Generator().manual_seed(cfg.seed + 1))[:cfg.metric_images]
    x, xm = x_test[shown].to(device), x_test[metric_idx].to(device)
    scored: dict[str, Scored] = {}
    layers: list[str] = []
    fraction = np.zeros(0)
    for name in cfg.methods:
        def make(m: nn.Module, name: str = name) -> Any:
            return create_method(name, m, layer=layer if name in LAYER_METHODS else None, **SETUP.get(name, {}))

        method = make(model)
        curves = deletion_insertion(model, xm, method.attribute(xm, pred[metric_idx]), pred[metric_idx],
                                    steps=cfg.steps, substitute=cfg.substitute)
        check = randomization_check(make, model, x[: cfg.sanity_images], pred[shown][: cfg.sanity_images],
                                    seed=cfg.seed)
        scored[name] = Scored(method.attribute(x, pred[shown]).sum(1).detach().cpu().float().numpy(),
                              curves.deletion.mean(0), curves.insertion.mean(0), curves.deletion_auc,
                              curves.insertion_auc, check.spearman_abs.mean(1), check.spearman_signed.mean(1))
        layers, fraction = check.layers, curves.fraction
    shown_arrays = {"images": x.detach().cpu().float().numpy(), "labels": y_test[shown].numpy(),
                    "preds": pred[shown].numpy(), "classes": np.array(info.get("classes", []), dtype=str),
                    "fraction": fraction.astype(np.float32)}
    return _result(cfg, info, origin, layer, t0, shown_arrays, scored, layers)


@dataclass
class Scored:
    """One method's maps of the shown images and its quality measures."""

    maps: np.ndarray  # (n, H, W), summed over channels
    deletion: np.ndarray  # (S+1,) mean curve
    insertion: np.ndarray
    deletion_auc: np.ndarray  # (metric images,)
    insertion_auc: np.ndarray
    sanity_abs: np.ndarray  # (layers,) mean Spearman of |map| after each randomisation step
    sanity_signed: np.ndarray


def _result(cfg: ExplainConfig, info: dict, origin: str, layer: str | None, t0: float,
            shown: dict[str, np.ndarray], scored: dict[str, Scored], layers: list[str]) -> Result:
    per = {field_: {k: getattr(s, field_) for k, s in scored.items()}
           for field_ in ("maps", "deletion", "insertion", "deletion_auc", "insertion_auc", "sanity_abs",
                          "sanity_signed")}
    metrics = {
        "model": origin, "dataset": info.get("dataset"), "cam_layer": layer, "methods": list(scored),
        "deletion_auc": {k: float(v.mean()) for k, v in per["deletion_auc"].items()},
        "insertion_auc": {k: float(v.mean()) for k, v in per["insertion_auc"].items()},
        "sanity_layers": layers,
        "sanity_spearman_abs_all_layers": {k: float(v[-1]) for k, v in per["sanity_abs"].items()},
        "sanity_spearman_abs_top_layer": {k: float(v[0]) for k, v in per["sanity_abs"].items()},
        "accuracy_of_shown": float((shown["labels"] == shown["preds"]).mean()),
    }
    arrays = dict(shown)
    for field_, values in per.items():
        arrays.update({f"{field_}.{k}": np.asarray(v, dtype=np.float32) for k, v in values.items()})
    return Result(
        name="explain",
        title="Explanations: every method, deletion/insertion and the sanity check",
        metrics=metrics,
        published={
            "sanity_spearman_abs_all_layers": Published(
                "guided backprop and guided Grad-CAM stay close to their original maps; gradient, integrated "
                "gradients, SmoothGrad and Grad-CAM do not", ADEBAYO + ", Fig. 2",
                "ImageNet Inception v3; rank correlation of |map| after cascading randomisation"),
            "deletion_auc": Published("lower is better; Grad-CAM 0.123, RISE 0.108 on ImageNet ResNet-50",
                                      RISE + ", Table 2", "another data set and model: compare the ordering"),
            "insertion_auc": Published("higher is better; Grad-CAM 0.677, RISE 0.726 on ImageNet ResNet-50",
                                       RISE + ", Table 2", "another data set and model: compare the ordering"),
        },
        provenance=provenance(cfg, [cfg.seed], info, t0, model=origin),
        arrays=arrays,
        notes=[
            f"Model: {origin}. Every map explains the class the model predicted; Grad-CAM and guided Grad-CAM "
            f"use layer {layer}.",
            "Settings: integrated gradients 50 Gauss–Legendre steps from a black baseline; SmoothGrad/VarGrad 16 "
            "copies, σ = 15 % of each image's range; occlusion 4×4 windows at stride 2 with zeros. Deletion and "
            f"insertion change 1/{cfg.steps} of the pixels per step, the removed pixels replaced by "
            f"'{cfg.substitute}'; the areas are per image, averaged over {cfg.metric_images} test images.",
            "The sanity check re-draws each layer with PyTorch's own initialisation, from the output layer down, "
            f"on a copy of the model; the correlations are averaged over {cfg.sanity_images} shown images.",
        ],
    )


__all__ = ["ExplainConfig", "run"]
