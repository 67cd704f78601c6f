"""`reproduce inversion`: Mahendran and Vedaldi, "Understanding Deep Image Representations by Inverting Them",
CVPR 2015 (docs/REFERENCE.md §6), on small networks a CPU trains in a minute.

For each network studied (LeNet-5 on MNIST; ConvPool-CNN-C at a quarter width on Fashion-MNIST, `second`):
1. it is trained here on a subset (as `reproduce zf` does), and a copy with the same architecture keeps its random
   initial weights;
2. a few test images of different classes are inverted at every layer (`optvis.invert_layers`, all layers in one
   batch; the second network's `second_layers` only, when given), by the trained and by the random network: the
   reconstructions by depth (the paper's Fig. 6: deeper is blurrier, what the network discriminates survives) and
   the normalised reconstruction error ‖Φ(x*) − Φ₀‖ / ‖Φ₀‖ of each layer, trained against random;
3. more test images are inverted at one deep layer (`deep_layer`, default the deepest layer whose output is still
   a map), the paper's Fig. 7-style "several images, one layer";
4. for comparison with feature visualisation, a few channels of each conv layer are rendered (`optvis.render_channels`)
   and the objective each reached is recorded.

λ_TV grows geometrically with depth from `lambda_tv_first` to `lambda_tv_last` (the paper increases it with depth;
its values are for 224-pixel ImageNet images and are not in docs/REFERENCE.md, so ours are set here).

With `weights` (an ImageNet AlexNet or VGG-16 in torchvision format, `imagenet_model`), the same is done for that
network on scikit-image's natural sample images (`imagenet_images`, resized to `imagenet_size`, normalised with
ImageNet's mean and std inside the inverted network, so the reconstructions are in pixels), at its ReLU and pooling
layers and its class scores (`imagenet_layers` to choose), against the same architecture at seeded random weights.
The paper's own setting; about an hour of CPU at 224² for AlexNet. The Result holds arrays only;
`report/pages/inversion.py` draws the figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from convscope.analysis.clustering import representation_layers
from convscope.config import TrainConfig
from convscope.data.images import sample_image, sample_image_names
from convscope.errors import UserError
from convscope.experiments import register_experiment
from convscope.hooks import activations, conv_layers, conv_weight, get_layer
from convscope.models.loading import build, load_model
from convscope.optvis import invert_layers, render_channels
from convscope.result import Published, Result, provenance
from convscope.train.loop import evaluate, resolve_device
from convscope.train.run import build_model, model_of_run, train_here

SOURCE = "Mahendran & Vedaldi, CVPR 2015 (docs/REFERENCE.md §6)"
TITLE = "Mahendran & Vedaldi: inverting representations layer by layer"
Data = tuple[torch.Tensor, torch.Tensor]
IMAGENET_MODELS = ("alexnet", "vgg16")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _ImageNetInput(nn.Module):
    """The network with ImageNet's normalisation in front, so images and their reconstructions stay in pixels."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


@dataclass
class InversionConfig:
    """The networks studied and the inversion's settings (the paper's where it gives them)."""

    # Pinned: CPU results are bit-identical for a seed only at one thread count. One: the tensors are small, and two
    # threads on a busy 2-core CPU wait on each other and made the lab-sized run many times slower.
    threads: int = 1
    run: str | None = None  # study this run's final model instead of training `train` (the lab passes its own)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        model="lenet5", data="mnist", epochs=2, train_subset=10000, test_subset=2000))
    second: TrainConfig | None = field(default_factory=lambda: TrainConfig(
        model="allconv-c", data="fashion-mnist", model_args={"width": 0.25, "final_relu": False}, epochs=3,
        batch_size=128, lr=0.003, train_subset=6000, test_subset=2000))
    # The second network's layers inverted (None: every layer); name its activations and pools, e.g.
    # ("features.relu1", "features.pool1", ...), for a quicker run.
    second_layers: tuple[str, ...] | None = None
    weights: str | None = None  # an ImageNet network's weights in torchvision format: adds it as a third study
    imagenet_model: str = "alexnet"  # the architecture of `weights`: alexnet or vgg16
    imagenet_images: tuple[str, ...] = ("chelsea", "astronaut", "coffee")  # scikit-image samples inverted
    imagenet_size: int = 224
    imagenet_layers: tuple[str, ...] | None = None  # default: every ReLU and pooling layer, and the class scores
    images: int = 3  # test images (different classes) inverted at every layer
    deep_images: int = 8  # test images inverted at the deep layer
    deep_layer: str | None = None  # of the first network; default: the deepest layer whose output is still a map
    steps: int = 400  # the paper's 100 + 200 + 100
    lr: float = 0.02
    momentum: float = 0.9
    alpha: float = 6.0
    beta: float = 2.0
    lambda_alpha: float = 1e-3
    lambda_tv_first: float = 0.005
    lambda_tv_last: float = 0.05
    jitter: int | None = None  # None: 4 pixels per 224 (none at 28×28)
    featurevis_channels: int = 4
    featurevis_steps: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.weights is not None and self.imagenet_model not in IMAGENET_MODELS:
            raise UserError(f"imagenet_model {self.imagenet_model!r} is not one this study reads ImageNet weights for: "
                            f"use {' or '.join(IMAGENET_MODELS)}.")
        if self.images < 1 or self.deep_images < 1 or self.featurevis_channels < 1:
            raise UserError("images, deep_images and featurevis_channels must be at least 1.")

    @classmethod
    def lab(cls) -> InversionConfig:
        """`convscope lab`'s size: the lab's LeNet-5 (the lab sets `run`), no second network, fewer images and
        steps."""
        return cls(train=replace(cls().train, epochs=1, train_subset=4000, test_subset=500), second=None, images=2,
                   deep_images=3, steps=80, featurevis_channels=2, featurevis_steps=16)


def tv_by_depth(cfg: InversionConfig, n: int) -> list[float]:
    """λ_TV of n layers in forward order, geometric from `lambda_tv_first` to `lambda_tv_last`."""
    if n == 1:
        return [cfg.lambda_tv_first]
    ratio = cfg.lambda_tv_last / cfg.lambda_tv_first
    return [cfg.lambda_tv_first * ratio ** (i / (n - 1)) for i in range(n)]


def _pick(model: nn.Module, test: Data, n: int, seed: int) -> torch.Tensor:
    """n test indices, of different classes while there are classes left (seeded)."""
    order = torch.randperm(len(test[1]), generator=torch.Generator().manual_seed(seed + 1)).tolist()
    chosen: list[int] = []
    for i in order:
        if all(int(test[1][c]) != int(test[1][i]) for c in chosen) or len(chosen) >= len(set(test[1].tolist())):
            chosen.append(i)
        if len(chosen) == n:
            break
    return torch.tensor(chosen, dtype=torch.long)


def _invert(cfg: InversionConfig, model: nn.Module, x: torch.Tensor, layers: list[str]) -> dict[str, Any]:
    return invert_layers(model, x, layers, steps=cfg.steps, lr=cfg.lr, momentum=cfg.momentum, alpha=cfg.alpha,
                         beta=cfg.beta, lambda_alpha=cfg.lambda_alpha, lambda_tv=tv_by_depth(cfg, len(layers)),
                         jitter=cfg.jitter, seed=cfg.seed)


def _networks(tcfg: TrainConfig, run: str | None, progress: bool) -> tuple[nn.Module, nn.Module, TrainConfig, Data,
                                                                            dict, float]:
    """The trained network (of run `run`, or trained here on `tcfg`), the same one at its seeded initial weights,
    the training config, the test data, its description and the training time."""
    device = resolve_device(tcfg.device)
    if run is not None:
        model, tcfg, train, test, info = model_of_run(run, str(device), progress=progress, test_subset=1000)
        seconds = 0.0
    else:
        model, train, test, info, seconds = train_here(tcfg, progress=progress)
    random_model = build_model(tcfg, train[0].shape[1], len(info["classes"]), device).eval()  # its seeded start
    return model, random_model, tcfg, test, info, seconds


def _last_map(model: nn.Module, x: torch.Tensor, layers: list[str]) -> str:
    """The deepest of `layers` whose output is still a map larger than one pixel (LeNet-5: features.pool2,
    allconv-c: features.conv8, a user's ResNet-style model: its last conv); the last layer if none is."""
    shapes = {n: a.shape for n, a in activations(model, x, layers).items()}
    maps = [n for n in layers if len(shapes[n]) == 4 and shapes[n][2] * shapes[n][3] > 1]
    return maps[-1] if maps else layers[-1]


def _measure(cfg: InversionConfig, tcfg: TrainConfig, key: str, arrays: dict[str, np.ndarray],
             progress: bool) -> tuple[dict[str, Any], dict]:
    """Train one network and invert its layers, trained and random; its metrics and data description."""
    run = cfg.run if key == "s0" else None
    model, random_model, tcfg, test, info, train_seconds = _networks(tcfg, run, progress)
    device = resolve_device(tcfg.device)
    layers = representation_layers(model, test[0][:1].to(device))
    if key != "s0" and cfg.second_layers is not None:
        unknown = [n for n in cfg.second_layers if n not in layers]
        if unknown:
            raise UserError(f"second_layers names {unknown[0]!r}, not a representation layer of {tcfg.model}: choose "
                            f"among {', '.join(layers)}.")
        layers = [n for n in layers if n in cfg.second_layers]
    deep = cfg.deep_layer if key == "s0" and cfg.deep_layer else _last_map(model, test[0][:1].to(device), layers)
    if deep not in layers:
        raise UserError(f"deep_layer {deep!r} is not a representation layer of {tcfg.model}: choose one of "
                        f"{', '.join(layers)}.")
    shown = _pick(model, test, cfg.images, cfg.seed)
    x = test[0][shown]
    t = time.perf_counter()
    errors, slower = {}, {}
    for tag, net in (("trained", model), ("random", random_model)):
        inv = _invert(cfg, net, x, layers)
        errors[tag] = {n: float(r.error) for n, r in inv.items()}
        slower.update({f"{tag} {n}": r.lr for n, r in inv.items() if r.lr != cfg.lr})
        # (L, B, C, H, W): layer by image
        arrays[f"{key}.{tag}.images"] = np.stack([r.images.float().cpu().numpy() for r in inv.values()])
        arrays[f"{key}.{tag}.errors"] = np.stack([r.errors for r in inv.values()])  # (L, B)
    invert_seconds = time.perf_counter() - t
    arrays[f"{key}.originals"] = x.numpy()
    arrays[f"{key}.labels"] = test[1][shown].numpy()
    arrays[f"{key}.classes"] = np.array(info.get("classes", []), dtype=str)
    many = _pick(model, test, cfg.deep_images, cfg.seed + 7)
    deep_inv = _invert(replace(cfg, lambda_tv_first=tv_by_depth(cfg, len(layers))[layers.index(deep)]), model,
                       test[0][many], [deep])[deep]
    arrays.update({f"{key}.deep.originals": test[0][many].numpy(), f"{key}.deep.labels": test[1][many].numpy(),
                   f"{key}.deep.images": deep_inv.images.float().cpu().numpy(), f"{key}.deep.errors": deep_inv.errors})
    fv = {}
    for n in conv_layers(model):
        count = min(cfg.featurevis_channels, conv_weight(get_layer(model, n)).shape[0])  # a narrow layer: all
        vis = render_channels(model, n, channels=list(range(count)), steps=cfg.featurevis_steps, seed=cfg.seed,
                              input_shape=tuple(x.shape[1:]))
        fv[n] = float(np.mean(vis.values))
    mse = {n: float(((arrays[f"{key}.trained.images"][i] - x.numpy()) ** 2).mean()) for i, n in enumerate(layers)}
    origin = f"run {run}" if run else f"trained here ({tcfg.epochs} epochs, {tcfg.train_subset or 'all'} images)"
    m = {"network": f"{tcfg.model} on {tcfg.data}", "model": origin, "layers": layers, "deep_layer": deep,
         "test_accuracy": evaluate(model, *test)["acc"], "train_seconds": train_seconds,
         "invert_seconds": invert_seconds, "inversion_error_by_layer": errors,
         "pixel_mse_by_layer": mse, "deep_layer_error": float(deep_inv.error),
         "featurevis_objective_by_layer": fv,
         "lambda_tv_by_layer": dict(zip(layers, tv_by_depth(cfg, len(layers)), strict=True)),
         "lr_lowered": slower}  # layers whose inversion diverged at cfg.lr and ran at a fifth (or less)
    return m, info


def _measure_imagenet(cfg: InversionConfig, arrays: dict[str, np.ndarray], key: str = "s2"
                      ) -> tuple[dict[str, Any], dict]:
    """The ImageNet network of `cfg.weights` on scikit-image's samples, trained against random weights."""
    model = load_model(cfg.imagenet_model, cfg.weights).eval()
    with torch.random.fork_rng(devices=[]):  # the random twin from the seed, the global random state untouched
        torch.manual_seed(cfg.seed)
        random_model = build(cfg.imagenet_model).eval()
    names = list(cfg.imagenet_images)
    unknown = [n for n in names if n not in sample_image_names()]
    if unknown or not names:
        raise UserError(f"imagenet_images names {unknown[0] if unknown else 'no image'!r}: choose among "
                        f"{', '.join(sample_image_names())}.")
    size = cfg.imagenet_size
    x = torch.stack([torch.from_numpy(sample_image(n, grey=False, size=size)).permute(2, 0, 1) for n in names])
    net, rnet = _ImageNetInput(model), _ImageNetInput(random_model)
    every = [n.removeprefix("net.") for n in representation_layers(net, x[:1]) if n.startswith("net.")]
    if cfg.imagenet_layers is not None:
        bad = [n for n in cfg.imagenet_layers if n not in every]
        if bad:
            raise UserError(f"imagenet_layers names {bad[0]!r}, not a representation layer of {cfg.imagenet_model}: "
                            f"choose among {', '.join(every)}.")
        layers = list(cfg.imagenet_layers)
    else:
        kinds = (nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d)
        layers = [n for n in every if isinstance(model.get_submodule(n), kinds)] + every[-1:]
    t = time.perf_counter()
    errors, slower = {}, {}
    with torch.no_grad():
        predicted = net(x).argmax(1)
    for tag, network in (("trained", net), ("random", rnet)):
        inv = _invert(cfg, network, x, [f"net.{n}" for n in layers])
        errors[tag] = {n: float(inv[f"net.{n}"].error) for n in layers}
        slower.update({f"{tag} {n}": inv[f"net.{n}"].lr for n in layers if inv[f"net.{n}"].lr != cfg.lr})
        arrays[f"{key}.{tag}.images"] = np.stack([inv[f"net.{n}"].images.float().cpu().numpy() for n in layers])
        arrays[f"{key}.{tag}.errors"] = np.stack([inv[f"net.{n}"].errors for n in layers])
    invert_seconds = time.perf_counter() - t
    arrays.update({f"{key}.originals": x.numpy(), f"{key}.labels": predicted.numpy(),
                   f"{key}.classes": np.array([], dtype=str)})
    mse = {n: float(((arrays[f"{key}.trained.images"][i] - x.numpy()) ** 2).mean()) for i, n in enumerate(layers)}
    m = {"network": f"{cfg.imagenet_model} ({Path(cfg.weights or '').name}) on scikit-image samples",
         "model": f"ImageNet weights {cfg.weights}", "layers": layers, "test_accuracy": None,
         "train_seconds": 0.0, "invert_seconds": invert_seconds, "inversion_error_by_layer": errors,
         "pixel_mse_by_layer": mse, "featurevis_objective_by_layer": {},
         "lambda_tv_by_layer": dict(zip(layers, tv_by_depth(cfg, len(layers)), strict=True)),
         "lr_lowered": slower}  # layers whose inversion diverged at cfg.lr and ran at a fifth (or less)
    return m, {"dataset": "scikit-image samples", "images": names, "size": size, "weights": cfg.weights}


@register_experiment("inversion", TITLE, InversionConfig)
def run(cfg: InversionConfig, out_dir: Path, progress: bool = True) -> Result:
    """Train each network and invert its representations; `convscope.report.pages.inversion` draws the figures."""
    t0 = time.perf_counter()
    arrays: dict[str, np.ndarray] = {}
    per, infos = {}, []
    for i, tcfg in enumerate([cfg.train] + ([cfg.second] if cfg.second is not None else [])):
        per[f"s{i}"], info = _measure(cfg, tcfg, f"s{i}", arrays, progress)
        infos.append(info)
    if cfg.weights is not None:
        key = f"s{len(per)}"
        per[key], info = _measure_imagenet(cfg, arrays, key)
        infos.append(info)
    by = lambda name: {k: m[name] for k, m in per.items()}  # noqa: E731
    trained_vs_random = {k: float(np.mean([m["inversion_error_by_layer"]["random"][n] <
                                           m["inversion_error_by_layer"]["trained"][n] for n in m["layers"]]))
                         for k, m in per.items()}
    mse_rises = {k: _rises(list(m["pixel_mse_by_layer"].values())) for k, m in per.items()}
    metrics: dict[str, Any] = {
        "studies": by("network"),
        "inversion_error_by_layer": by("inversion_error_by_layer"),
        "pixel_mse_by_layer": by("pixel_mse_by_layer"),
        "pixel_mse_rises_with_depth": mse_rises,
        "random_lower_error_fraction": trained_vs_random,
        "featurevis_objective_by_layer": by("featurevis_objective_by_layer"),
        "test_accuracy": by("test_accuracy"),
        "invert_seconds": by("invert_seconds"),
        "wall_seconds": time.perf_counter() - t0,
        "per_study": per,
    }
    notes = [
        f"Each image is inverted from noise by {cfg.steps} heavy-ball steps (momentum {cfg.momentum:g}; learning rate "
        f"×1, ×0.1, ×0.01 over ¼, ½, ¼ of the steps), α = {cfg.alpha:g}, β = {cfg.beta:g}, λ_α = {cfg.lambda_alpha:g}, "
        f"λ_TV from {cfg.lambda_tv_first:g} (first layer) to {cfg.lambda_tv_last:g} (last), geometric in depth; the "
        "regularisers are divided by H·W·B^α and H·W·V^β with B = 0.5 (half the pixel range [0, 1]) and V = B/6.5.",
        "The error is ‖Φ(x*) − Φ₀‖ / ‖Φ₀‖ at the inverted layer, mean over the images; the pixel MSE compares x* with "
        "the original image. A deep code is low-dimensional, so it can be matched closely by an image quite unlike "
        "the original: its error is small while its pixel MSE is large.",
        "The random network is the same architecture at its initial weights (the trained network's own start).",
        f"Feature visualisation: channels 0..{cfg.featurevis_channels - 1} of each conv layer rendered by "
        f"optvis.render_channels ({cfg.featurevis_steps} steps); the value is the mean channel activation reached.",
    ]
    lowered = {k: m["lr_lowered"] for k, m in per.items() if m.get("lr_lowered")}
    if lowered:
        notes.append("Diverged at the learning rate and ran again at a fifth of it (or less), from the same start: "
                     + "; ".join(f"{per[k]['network']}: " + ", ".join(f"{n} at {lr:g}" for n, lr in v.items())
                                 for k, v in lowered.items())
                     + ". A BatchNorm or residual network's deep codes can be steeper than the step expects.")
    published = {
        "pixel_mse_rises_with_depth": Published(
            "deeper layers give blurrier reconstructions, further from the original in pixels, that keep what the "
            "network discriminates", SOURCE + ", §4 and Fig. 6", "qualitative; compare the figure", kind="published"),
    }
    return Result(name="inversion", title=TITLE, metrics=metrics, published=published,
                  provenance=provenance(cfg, [cfg.train.seed] + ([cfg.second.seed] if cfg.second else []), infos[0],
                                        t0, data_by_study=infos[1:]),
                  arrays=arrays, notes=notes)


def _rises(values: list[float]) -> bool:
    """Whether the second half of `values` is larger on average than the first half."""
    half = max(1, len(values) // 2)
    return bool(np.mean(values[-half:]) > np.mean(values[:half]))


__all__ = ["InversionConfig", "run", "tv_by_depth"]
