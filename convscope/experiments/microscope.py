"""`reproduce microscope`: a page per channel of every conv layer, as OpenAI Microscope, offline and for any model.

For each conv layer of a trained model (the lab's run, a run directory `run`, or LeNet-5 trained here) and each
of its channels, the Result keeps what the atlas shows on the channel's tile and page:

- its filter weights (`hooks.conv_weight`);
- its feature visualisation: the image that maximises the channel's unit at the centre of the map, rendered for
  the whole layer in one batched optimisation (`optvis.render_channels`: Fourier parameterisation, transformation
  robustness; Olah et al., "Feature Visualization", Distill 2017), and the objective it reached. The centre
  unit, not the channel's mean: a conv output is linear in the image, so its mean over positions is maximised by
  a flat white or black image, while one unit shows the pattern its receptive field prefers;
- its top-k training images with the input patch under the receptive field and the deconvnet projection of
  that activation (`experiments.zf.top_grids`: Zeiler & Fergus's Fig. 2);
- its pairing partner: the filter of the same layer whose weights point most opposite (`analysis.pairing`,
  the μ of Shang et al.'s CReLU study) and the cosine μ between them;
- its mean activation over test images (the layer's output before any ReLU, over images and positions) and how
  often it is positive.

The Result holds arrays only; `report/pages/microscope.py` draws the tiles and pages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convscope.analysis.pairing import pairing
from convscope.config import TrainConfig
from convscope.errors import UserError
from convscope.experiments import register_experiment
from convscope.experiments.zf import projection_note, top_grids
from convscope.hooks import activations, conv_layers, conv_weight, get_layer
from convscope.optvis import render_channels
from convscope.optvis.objectives import neuron
from convscope.result import Result, provenance
from convscope.train.loop import evaluate, resolve_device
from convscope.train.run import model_of_run, train_here

TITLE = "Microscope: every channel of every conv layer"


@dataclass
class MicroscopeConfig:
    run: str | None = None  # a run directory to look at (the lab sets its own); None: train `train` here
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        model="lenet5", data="mnist", epochs=2, train_subset=20000))
    root: str | None = None  # a directory holding the user's data files (CIFAR batches: data=cifar10)
    layers: list[str] | None = None  # conv layers to show (default: all)
    top_k: int = 9
    scan_images: int = 10000  # training images scanned for each channel's top-k
    mean_images: int = 1000  # test images for the mean activation
    featurevis_steps: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.scan_images < 1 or self.mean_images < 1 or self.featurevis_steps < 1:
            raise UserError("top_k, scan_images, mean_images and featurevis_steps must be at least 1.")

    @classmethod
    def lab(cls) -> MicroscopeConfig:
        """`convscope lab`'s size: the lab's model (the lab sets `run`), fewer images and optimisation steps."""
        return cls(scan_images=3000, mean_images=500, featurevis_steps=128)


def _model(cfg: MicroscopeConfig, out_dir: Path, progress: bool) -> tuple[torch.nn.Module, Any, Any, dict, str]:
    """The model to look at, its data and where it came from."""
    if cfg.run is not None:
        model, rcfg, train, test, info = model_of_run(cfg.run, str(resolve_device(cfg.train.device)), cfg.root,
                                                      progress)
        return model, train, test, info, f"{rcfg.model} on {rcfg.data}, the checkpoint of run {cfg.run}"
    tcfg = cfg.train
    model, train, test, info, _ = train_here(tcfg, out_dir / "run", cfg.root, progress)
    return model, train, test, info, f"{tcfg.model} on {tcfg.data}, trained here ({tcfg.epochs} epochs)"


@register_experiment("microscope", TITLE, MicroscopeConfig)
def run(cfg: MicroscopeConfig, out_dir: Path, progress: bool = True) -> Result:
    """Everything each channel's tile and page show; `convscope.report.pages.microscope` draws them."""
    t0 = time.perf_counter()
    model, train, test, info, origin = _model(cfg, out_dir, progress)
    convs = conv_layers(model)
    layers = cfg.layers or convs
    for n in layers:
        get_layer(model, n)  # an unknown name fails here, with suggestions
        if n not in convs:
            raise UserError(f"Layer {n!r} is not a convolution: name some of {', '.join(convs)}.")
    order = torch.randperm(len(train[0]), generator=torch.Generator().manual_seed(cfg.seed))
    x_scan = train[0][order[:cfg.scan_images]]
    x_mean = test[0][:cfg.mean_images]
    arrays: dict[str, np.ndarray] = {"classes": np.array(info.get("classes", []), dtype=str)}
    metrics: dict[str, Any] = {"model": origin, "dataset": info.get("dataset"), "layers": layers,
                               "test_accuracy": evaluate(model, *test)["acc"]}
    grids = top_grids(model, layers, x_scan, cfg.top_k, "m", arrays)
    acts = activations(model, x_mean, layers)
    vis_value: dict[str, float] = {}
    channels: dict[str, int] = {}
    t_vis = time.perf_counter()
    for n in layers:
        w = conv_weight(get_layer(model, n)).detach().float().cpu()
        vis = render_channels(model, n, unit=neuron, steps=cfg.featurevis_steps, seed=cfg.seed,
                              input_shape=tuple(x_scan.shape[1:]))
        a = acts[n].float()  # (B, C, h, w)
        arrays[f"m.{n}.weight"] = w.numpy()
        arrays[f"m.{n}.vis"] = vis.images.detach().float().cpu().numpy()
        arrays[f"m.{n}.vis_value"] = np.asarray(vis.values, np.float32)
        arrays[f"m.{n}.mean"] = a.mean(dim=(0, 2, 3)).cpu().numpy()
        arrays[f"m.{n}.positive"] = (a > 0).float().mean(dim=(0, 2, 3)).cpu().numpy()
        if w.shape[0] >= 2:
            mu, partner = pairing(w)
            arrays[f"m.{n}.partner"], arrays[f"m.{n}.partner_mu"] = partner.numpy(), mu.float().numpy()
        vis_value[n], channels[n] = float(np.mean(vis.values)), int(w.shape[0])
    metrics.update({"channels_by_layer": channels, "featurevis_objective_by_layer": vis_value,
                    "featurevis_seconds": time.perf_counter() - t_vis, "topk_scan_images": len(x_scan),
                    "topk_scan_images_per_second": grids["topk_scan_images_per_second"],
                    "receptive_field": grids["receptive_field"],
                    "deconv_vs_gradient_max_abs_diff": grids["deconv_vs_gradient_max_abs_diff"],
                    "projection_by_layer": grids["projection_by_layer"], "mean_images": len(x_mean)})
    notes = [
        f"Feature visualisation: {cfg.featurevis_steps} Adam steps on a Fourier-parameterised image with jitter, "
        "scale and rotation (optvis.render_channels), all channels of a layer in one batch, each image maximising "
        "the channel's unit at the centre of the map; the value is that unit's activation on the image.",
        f"Top-{cfg.top_k}: {len(x_scan)} training images scanned in one streaming pass (analysis.topk); each shown "
        "as the patch under the activation's receptive field and the deconvnet projection of that activation."
        + projection_note(grids["projection_by_layer"]),
        "Partner: the filter of the same layer with the most negative cosine μ to this one (Shang et al., ICML 2016: "
        "learned conv1 filters come in opposite pairs, μ near −1).",
        f"Mean activation: the layer's output (before the ReLU) averaged over {len(x_mean)} test images and all "
        "positions; 'positive' is how often it is above zero.",
    ]
    return Result(name="microscope", title=TITLE, metrics=metrics, published={},
                  provenance=provenance(cfg, [cfg.seed], info, t0), arrays=arrays, notes=notes)


__all__ = ["MicroscopeConfig", "run"]
