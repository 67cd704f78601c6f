"""`reproduce parts`: what each part of a CNN does, one measured section per part.

After the textbook convolution chapter (Qiu Xipeng, *Neural Networks and Deep Learning*, ch. 5;
docs/REFERENCE.md §1) and Kuo's RECOS article (Kuo 2016, §3):

1. Filters: Sobel, Gaussian and Laplacian kernels on photographs; planted into an `nn.Conv2d` they give
   the same maps as `scipy.signal.correlate2d` (deep-learning convolution is cross-correlation).
2. Pooling: how much of a planted edge map survives max versus average pooling of noisy images
   (`analysis.pooling`), and LeNet-5 with either pooling under Gaussian test noise.
3. Normalisation: an MLP on MNIST whose pixels are scaled by factors from 1e-2 to 1e2, trained raw,
   standardised, and with BatchNorm: loss by step, and steps to reach a target loss.
4. Activation: without activations LeNet-5 (average pooling) is one affine map, however deep
   (`analysis.linearity`), and it classifies like a linear model.
5. Noise injection: LeNet-5 trained with Gaussian input noise and dropout, against clean training.
6. Filter visualisation: the input each conv filter of a trained LeNet-5 likes best (`optvis`).
7. Layer counting: the counted depth of every model in the zoo (VGG-16 has 16).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convscope.analysis.kernels import correlate, filter_bank, planted_conv, sobel_x, sobel_y, stack_kernels
from convscope.analysis.linearity import affine_map, max_affine_error
from convscope.analysis.pooling import POOLS, edge_survival, pooled_examples
from convscope.config import TrainConfig
from convscope.data.images import sample_image
from convscope.experiments import register_experiment
from convscope.hooks import conv_layers
from convscope.models import create_model, list_models
from convscope.models.summary import summarize
from convscope.optvis import objective_values, render_channels
from convscope.optvis.objectives import channel, l2, neuron
from convscope.optvis.transforms import compose
from convscope.result import Published, Result, provenance
from convscope.train.loop import evaluate, fit, resolve_device
from convscope.train.run import build_model, load_data

NORM_VARIANTS = ("unscaled", "raw", "standardised", "batchnorm")
TEXTBOOK = "Qiu, Neural Networks and Deep Learning, ch. 5 (docs/REFERENCE.md §1)"
RECOS = "Kuo 2016, RECOS article (docs/REFERENCE.md §3)"


@dataclass
class PartsConfig:
    """Every section's settings; the defaults run in about a minute on one free CPU core.

    `seed` seeds everything (it replaces `train.seed`). `threads` is PyTorch's intra-op thread count for
    the run (0, the default, leaves it alone): on a quiet 2-core CPU two threads train LeNet-5 about
    1.5× faster than one, but on a CPU shared with other busy processes one thread avoids spinning
    helper threads, which made this run about 5× slower there (both measured). `train` is the
    recipe of the four LeNet-5s (max pooling, average pooling, no activation, noise-trained).
    `edge_noise` and `test_noise` are noise standard deviations in image units (pixels in [0, 1]);
    `norm_*` set the MLP of the normalisation section; `featurevis_*` the feature visualisation (`optvis`):
    a Fourier-space image (`featurevis_fft`) and Lucid's transformations scaled to 28×28
    (`featurevis_transforms`), or free pixels and none, Adam at Lucid's learning rate.
    """

    seed: int = 0
    threads: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        model="lenet5", data="mnist", epochs=2, train_subset=20000, test_subset=5000))
    # 1. filters
    images: list[str] = field(default_factory=lambda: ["camera", "chelsea", "astronaut", "coffee"])
    image_size: int = 256
    gaussian_size: int = 5
    gaussian_sigma: float = 1.0
    # 2. pooling (and the test noise of 5.)
    pool_size: int = 2
    edge_noise: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.4])
    test_noise: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.5, 0.8])
    # 3. normalisation
    norm_scale_min: float = 1e-2
    norm_scale_max: float = 1e2
    norm_hidden: int = 64
    norm_steps: int = 300
    norm_batch: int = 128
    norm_lrs: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    norm_target_loss: float = 0.5
    # 5. noise injection
    train_noise: float = 0.3
    dropout: float = 0.3
    # 6. filter visualisation
    featurevis_steps: int = 128
    featurevis_lr: float = 0.05
    featurevis_fft: bool = True
    featurevis_transforms: bool = True
    # none, as Lucid with a Fourier image: ‖x − ½‖'s pull has unit gradient norm however close to grey the image is,
    # which at the grey start outweighs LeNet's small unit gradients (at 0.01 it left 2 of 6 conv1 and 4 of 6 relu1
    # channel-mean images grey on a trained LeNet-5)
    featurevis_l2: float = 0.0

    @classmethod
    def lab(cls) -> PartsConfig:
        """`convscope lab`'s size: one epoch on 6,000 images, shorter loss curves at four learning rates (about a
        third of the time)."""
        return cls(train=TrainConfig(model="lenet5", data="mnist", epochs=1, train_subset=6000, test_subset=2000),
                   norm_steps=150, norm_lrs=[1e-3, 1e-2, 1e-1, 1.0])


class GaussianNoise(nn.Module):
    """Adds N(0, σ²) noise to its input in training mode only, like dropout; the identity in eval mode."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x) if self.training and self.sigma > 0 else x


class _Out:
    """What the sections produce, gathered into one Result: numbers, the arrays its page draws, notes.

    Compute and render apart (docs/DESIGN.md): no section draws; `report/pages/parts.py` draws every
    figure from these when the atlas is rendered.
    """

    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.notes: list[str] = []


@register_experiment("parts", "The role of each part of a CNN", PartsConfig)
def run(cfg: PartsConfig, out_dir: Path, progress: bool = True) -> Result:
    return _run(cfg, progress)  # run_experiment sets cfg.threads


def _run(cfg: PartsConfig, progress: bool) -> Result:
    t0 = time.perf_counter()
    out = _Out()
    device = resolve_device(cfg.train.device)
    tcfg = replace(cfg.train, seed=cfg.seed)
    train, test, data_info = load_data(tcfg, progress=progress)

    _filters(cfg, out)
    nets, train_seconds = _train_lenets(cfg, tcfg, train, test, len(data_info["classes"]), device, progress)
    # Accuracy under test noise of the max, avg (section 2) and noise-trained (section 5) networks.
    under_noise = {k: _acc_under_noise(nets[k], *test, cfg.test_noise, cfg.seed) for k in ("max", "avg", "noisy")}
    _pooling(cfg, out, under_noise)
    _normalisation(cfg, out, *train)
    _activation(out, nets, *test)
    _noise_injection(cfg, out, nets, under_noise, *test)
    _featurevis(cfg, out, nets["max"])
    _depth(out)
    out.metrics["train_seconds"] = float(sum(train_seconds.values()))

    return Result(
        name="parts",
        title="The role of each part of a CNN",
        metrics=out.metrics,
        published=_published(),
        provenance=provenance(cfg, [cfg.seed], data_info, t0, device=str(device),
                              threads=torch.get_num_threads(), train_seconds=train_seconds),
        arrays=out.arrays,
        notes=out.notes,
    )


def _published() -> dict[str, Published]:
    """The figures this study is compared with; each tolerance is explained in its note."""
    return {
        "planted_filter_max_abs_diff": Published(
            0.0, f"{TEXTBOOK}; scipy.signal.correlate2d", "deep-learning convolution is cross-correlation, so a "
            "planted kernel gives correlate2d's map. Tolerance 1e-5: float32 rounding of a sum of at most 25 "
            "products below 8 stays under 1e-6, while a flipped or shifted kernel is off by order 1",
            kind="expected (theory)", tolerance=1e-5),
        "linear_collapse_max_abs_diff": Published(
            0.0, RECOS, "without nonlinear activations conv / average-pool / FC layers compose to one affine map "
            "x ↦ A·x + b, however deep. Tolerance 1e-4: the network runs in float32 (about 7 digits) on logits "
            "of order 10, so rounding alone gives about 1e-6; a single kink would give errors of order 0.1",
            kind="expected (theory)", tolerance=1e-4),
        "depth_vgg16": Published(16, TEXTBOOK, "VGG-16 is named for its 16 weight layers (13 conv + 3 FC); a "
                                 "count is exact, so tolerance 0", tolerance=0),
        "depth_lenet5": Published(5, TEXTBOOK, "the counting rule (conv and FC layers only; pooling, "
                                  "normalisation, flatten and activations do not count) on LeNet-5: conv1, conv2, "
                                  "fc1, fc2, fc3; exact, so tolerance 0", kind="expected (theory)", tolerance=0),
    }


def _train_lenets(cfg: PartsConfig, tcfg: TrainConfig, train: tuple[torch.Tensor, torch.Tensor],
                  test: tuple[torch.Tensor, torch.Tensor], classes: int, device: torch.device,
                  progress: bool) -> tuple[dict[str, nn.Module], dict[str, float]]:
    """The four LeNet-5s of sections 2, 4 and 5, all from the same seeded initialisation, and their times."""
    nets, seconds = {}, {}
    for key, args, wrap in (("max", {"pool": "max"}, False), ("avg", {"pool": "avg"}, False),
                            ("linear", {"activation": "none", "pool": "avg"}, False), ("noisy", {"pool": "max"}, True)):
        mcfg = replace(tcfg, model_args={**tcfg.model_args, **args})
        model = build_model(mcfg, train[0].shape[1], classes, device)
        model = _noise_injected(model, cfg.train_noise, cfg.dropout) if wrap else model
        fitted = fit(model, train, test, mcfg, progress=progress)
        nets[key], seconds[key] = model, fitted.train_seconds
    return nets, seconds


def _rounded(d: dict[str, float], digits: int = 4) -> dict[str, float]:
    """Dict values to `digits` significant digits, for a readable table (the arrays keep full precision)."""
    return {k: float(f"{v:.{digits}g}") for k, v in d.items()}


# ---------------------------------------------------------------- 1. filters


def _filters(cfg: PartsConfig, out: _Out) -> None:
    bank = filter_bank(cfg.gaussian_size, cfg.gaussian_sigma)
    names, kernels = list(bank), stack_kernels(list(bank.values()))  # (4, k, k), zero-padded to one size
    images = np.stack([sample_image(n, size=cfg.image_size) for n in cfg.images])  # (n, H, W)
    # Narrow ("valid") convolution: a zero-padded border would show up as a strong false edge.
    conv = planted_conv(list(bank.values()), padding=0)  # Conv2d(1, 4, k, padding=0), bias 0
    with torch.no_grad():
        planted = conv(torch.from_numpy(images)[:, None]).numpy()  # (n, 4, H-k+1, W-k+1)
    oracle = np.stack([[correlate(img, k, mode="valid") for k in kernels] for img in images])
    diff = np.abs(planted - oracle).max(axis=(0, 2, 3))  # per kernel
    out.metrics["planted_filter_max_abs_diff"] = float(diff.max())
    out.metrics["planted_filter_max_abs_diff_by_kernel"] = _rounded({n: float(d) for n, d in zip(names, diff)})
    out.metrics["filter_mean_abs_response"] = _rounded({n: float(np.abs(oracle[:, i]).mean())
                                                        for i, n in enumerate(names)})
    out.metrics["filter_names"] = names
    out.metrics["filter_signed"] = [bool(k.sum() < 0.5) for k in kernels]  # derivatives sum to 0; a blur to 1
    out.metrics["sample_images"] = list(cfg.images)
    p = (kernels.shape[1] - 1) // 2  # the border a narrow convolution drops
    out.arrays.update(
        filter_images=images[:, p:-p or None, p:-p or None],  # (n, H-k+1, W-k+1): aligned with the responses
        filter_responses=planted.astype(np.float16),  # display only (the check above used float32): half the bytes
        kernels=kernels,
    )


# ---------------------------------------------------------------- 2. pooling


def _pooling(cfg: PartsConfig, out: _Out, under_noise: dict[str, list[float]]) -> None:
    images = np.stack([sample_image(n, size=cfg.image_size) for n in cfg.images])
    conv = planted_conv([sobel_x(), sobel_y()], padding=0)  # valid: no false edge along the border
    survival = {p: edge_survival(images, conv, cfg.edge_noise, p, cfg.pool_size, seed=cfg.seed) for p in POOLS}
    out.metrics["pool_size"] = cfg.pool_size
    out.metrics["edge_noise_sigmas"] = list(cfg.edge_noise)
    out.metrics["edge_survival_max"] = [float(v) for v in survival["max"]]
    out.metrics["edge_survival_avg"] = [float(v) for v in survival["avg"]]
    sigma = cfg.edge_noise[len(cfg.edge_noise) // 2]
    out.metrics["pooling_example_sigma"] = sigma
    example = pooled_examples(images[0], conv, sigma, cfg.pool_size, seed=cfg.seed)  # 2-D float32 maps
    out.arrays.update({f"pooling_example_{k}": v for k, v in example.items()})

    out.metrics["test_noise_sigmas"] = list(cfg.test_noise)
    out.metrics["acc_maxpool_under_noise"] = under_noise["max"]
    out.metrics["acc_avgpool_under_noise"] = under_noise["avg"]
    out.notes.append("Edge survival is the Pearson correlation between the pooled ReLU(Sobel x, Sobel y) map of "
                     "a noisy photograph and that of the clean one (analysis/pooling.py); 1 means the pooled "
                     "edges are intact. Test noise is added without clipping, the same draw for every model.")


def _acc_under_noise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigmas: list[float],
                     seed: int) -> list[float]:
    """Test accuracy on x + σ·ε for each σ, with one fixed draw ε ~ N(0, 1) shared by all models and σ."""
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1))
    return [evaluate(model, x + s * eps, y)["acc"] for s in sigmas]


# ---------------------------------------------------------------- 3. normalisation


def _mlp(hidden: int, batchnorm: bool) -> nn.Module:
    """784 → hidden → 10 with ReLU; with `batchnorm`, BatchNorm on the input features and the hidden layer."""
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    if batchnorm:
        layers.append(("bn0", nn.BatchNorm1d(784)))
    layers.append(("fc1", nn.Linear(784, hidden)))
    if batchnorm:
        layers.append(("bn1", nn.BatchNorm1d(hidden)))
    layers += [("relu1", nn.ReLU()), ("fc2", nn.Linear(hidden, 10))]
    return nn.Sequential(OrderedDict(layers))


def _loss_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, steps: int, batch: int,
                seed: int) -> np.ndarray:
    """Training loss at every step of SGD (momentum 0.9, constant lr); NaN from the step it diverges."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    losses = np.full(steps, np.nan)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        if not torch.isfinite(loss) or loss.item() > 1e4:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[step] = loss.item()
    return losses


def steps_to_loss(losses: np.ndarray, target: float, window: int = 20) -> int | None:
    """The first step at which the mean loss of the last `window` steps is at most `target` (None: never)."""
    if len(losses) < window:
        return None
    smooth = np.convolve(np.nan_to_num(losses, nan=np.inf), np.ones(window) / window, mode="valid")
    hit = np.nonzero(smooth <= target)[0]
    return int(hit[0] + window) if len(hit) else None


def _normalisation(cfg: PartsConfig, out: _Out, x_train: torch.Tensor, y_train: torch.Tensor) -> None:
    x = x_train.flatten(1)  # (N, 784)
    gen = torch.Generator().manual_seed(cfg.seed)
    lo, hi = np.log10(cfg.norm_scale_min), np.log10(cfg.norm_scale_max)
    scale = 10 ** (lo + (hi - lo) * torch.rand(x.shape[1], generator=gen))  # one factor per pixel, log-uniform
    scaled = x * scale
    mean, std = scaled.mean(0), scaled.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))  # pixels that are always 0 stay 0
    inputs = {"unscaled": x, "raw": scaled, "standardised": (scaled - mean) / std, "batchnorm": scaled}
    curves = np.full((len(NORM_VARIANTS), len(cfg.norm_lrs), cfg.norm_steps), np.nan)
    best: dict[str, tuple[int | None, float | None]] = {}
    for v, name in enumerate(NORM_VARIANTS):
        for j, lr in enumerate(cfg.norm_lrs):
            torch.manual_seed(cfg.seed)  # the same initial weights for every learning rate
            model = _mlp(cfg.norm_hidden, batchnorm=name == "batchnorm")
            curves[v, j] = _loss_curve(model, inputs[name], y_train, lr, cfg.norm_steps, cfg.norm_batch, cfg.seed)
        steps = [steps_to_loss(c, cfg.norm_target_loss) for c in curves[v]]
        reached = [(s, lr) for s, lr in zip(steps, cfg.norm_lrs) if s is not None]
        best[name] = min(reached) if reached else (None, None)
    out.metrics.update(norm_variants=list(NORM_VARIANTS), norm_lrs=list(cfg.norm_lrs), norm_hidden=cfg.norm_hidden,
                       norm_scale_range=[cfg.norm_scale_min, cfg.norm_scale_max],
                       norm_target_loss=cfg.norm_target_loss)
    for name in NORM_VARIANTS:
        out.metrics[f"steps_to_loss_{name}"] = best[name][0]
    out.metrics["best_lr_by_variant"] = {n: best[n][1] for n in NORM_VARIANTS}
    out.metrics["diverged_lrs_by_variant"] = {
        n: ", ".join(f"{lr:g}" for lr, c in zip(cfg.norm_lrs, curves[v]) if np.isnan(c[-1])) or "none"
        for v, n in enumerate(NORM_VARIANTS)}
    out.arrays["norm_loss_curves"] = curves.astype(np.float32)  # (variants, lrs, steps); NaN after a divergence
    out.arrays["norm_pixel_scale"] = scale.numpy().astype(np.float32).reshape(x_train.shape[1:])  # (C, H, W)
    out.notes.append(f"steps_to_loss_* is the first SGD step at which the mean training loss of the last 20 "
                     f"steps is at most {cfg.norm_target_loss:g}, for the best learning rate of "
                     f"{cfg.norm_lrs} (best_lr_by_variant); None if no learning rate got there in "
                     f"{cfg.norm_steps} steps.")


# ---------------------------------------------------------------- 4. activation


def _activation(out: _Out, nets: dict[str, nn.Module], x_test: torch.Tensor, y_test: torch.Tensor) -> None:
    linear = nets["linear"]
    A, b = affine_map(linear, tuple(x_test.shape[1:]))  # A: (10, 784), b: (10,)
    out.metrics["linear_collapse_max_abs_diff"] = max_affine_error(linear, A, b, x_test)
    acc_with, acc_without = evaluate(nets["avg"], x_test, y_test)["acc"], evaluate(linear, x_test, y_test)["acc"]
    out.metrics["acc_with_activation"], out.metrics["acc_without_activation"] = acc_with, acc_without
    sample = x_test[:300].to(A.device)  # the scatter of the figure needs only a few hundred
    with torch.no_grad():
        outputs = linear.eval()(sample).double().cpu().numpy()  # (300, 10)
    predicted = (sample.flatten(1).double() @ A.T + b).cpu().numpy()  # (300, 10)
    out.arrays["linear_collapse_A"] = A.float().cpu().numpy().reshape(len(A), *x_test.shape[1:])  # (10, C, H, W)
    out.arrays["linear_collapse_b"] = b.float().cpu().numpy()
    out.arrays["linear_collapse_outputs"] = outputs.astype(np.float32)
    out.arrays["linear_collapse_predicted"] = predicted.astype(np.float32)
    out.notes.append("Activation: both networks use average pooling (max pooling is itself a nonlinearity) "
                     "and the same recipe; A and b come from analysis/linearity.py, computed in float64. "
                     "Without activations the network is a linear classifier on the 784 pixels, whatever its "
                     "depth.")


# ---------------------------------------------------------------- 5. noise injection


def _noise_injected(model: nn.Module, sigma: float, p: float) -> nn.Module:
    """`model` behind a training-time Gaussian noise layer, with dropout after each classifier activation."""
    layers: list[tuple[str, nn.Module]] = []
    children = list(model.classifier.named_children())
    for i, (name, module) in enumerate(children):
        layers.append((name, module))
        if isinstance(module, nn.ReLU) and i < len(children) - 1:
            layers.append((f"drop{len(layers)}", nn.Dropout(p)))
    model.classifier = nn.Sequential(OrderedDict(layers))
    return nn.Sequential(OrderedDict(noise=GaussianNoise(sigma), net=model))


def _noise_injection(cfg: PartsConfig, out: _Out, nets: dict[str, nn.Module], under_noise: dict[str, list[float]],
                     x_test: torch.Tensor, y_test: torch.Tensor) -> None:
    out.metrics["train_noise_sigma"], out.metrics["dropout"] = cfg.train_noise, cfg.dropout
    out.metrics["acc_clean_trained_clean"] = evaluate(nets["max"], x_test, y_test)["acc"]
    out.metrics["acc_noise_trained_clean"] = evaluate(nets["noisy"], x_test, y_test)["acc"]
    out.metrics["acc_clean_trained_under_noise"] = under_noise["max"]
    out.metrics["acc_noise_trained_under_noise"] = under_noise["noisy"]


# ---------------------------------------------------------------- 6. filter visualisation


def _featurevis(cfg: PartsConfig, out: _Out, model: nn.Module) -> None:
    """One image per conv filter, a layer's filters in one batched optimisation (`optvis.render_channels`); the
    images go to arrays `featurevis_{conv1,...}_{channel,neuron}`."""
    start, final, layers = {}, {}, conv_layers(model)
    regulariser = cfg.featurevis_l2 * l2() if cfg.featurevis_l2 else None
    for layer in layers:
        short = layer.rsplit(".", 1)[-1]
        for unit in (channel, neuron):
            vis = render_channels(model, layer, unit=unit, fft_space=cfg.featurevis_fft,
                                  transforms=None if cfg.featurevis_transforms else compose(),
                                  regulariser=regulariser, steps=cfg.featurevis_steps, lr=cfg.featurevis_lr,
                                  seed=cfg.seed)
            out.arrays[f"featurevis_{short}_{unit.__name__}"] = vis.images.float().cpu().numpy()  # (filters, C, H, W)
            if unit is channel:  # the brief's objective: the channel's mean activation, without the regulariser
                own = channel(layer, list(range(len(vis.images))))
                a0, a1 = objective_values(model, own, vis.start_images), objective_values(model, own, vis.images)
                start[short], final[short] = float(a0.mean()), float(a1.mean())
                out.metrics[f"featurevis_increased_{short}"] = f"{int((a1 > a0).sum())}/{len(a1)}"
    out.metrics["featurevis_layers"] = list(layers)
    out.metrics["featurevis_mean_activation_start"] = _rounded(start)
    out.metrics["featurevis_mean_activation_final"] = _rounded(final)
    out.metrics.update(featurevis_steps=cfg.featurevis_steps, featurevis_fft=cfg.featurevis_fft,
                       featurevis_transforms=cfg.featurevis_transforms, featurevis_l2=cfg.featurevis_l2)
    out.notes.append("Filter visualisation: a conv1 map is linear in the image, so the mean of the whole map is "
                     "maximised by a flat image at the sign of the filter's sum (the 'mean of the channel' rows), "
                     "whatever the parameterisation: the Fourier image and the transformations change the path, "
                     "not the optimum. The 'centre unit' rows show what one unit wants within its receptive field "
                     "(5×5 for conv1, 14×14 for conv2); outside it the unit gives no gradient, so free pixels stay "
                     "grey while a Fourier image carries the same low frequencies beyond it.")


# ---------------------------------------------------------------- 7. layer counting


def depth_by_model() -> dict[str, int]:
    """The counted depth (`models.summary`, docs/REFERENCE.md §1) of every registered model, by name."""
    depths = {}
    for name in list_models():
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            depths[name] = summarize(create_model(name)).depth
    return depths


def _depth(out: _Out) -> None:
    depths = depth_by_model()
    out.metrics["depth_by_model"] = depths
    out.metrics["depth_vgg16"] = depths.get("vgg16")
    out.metrics["depth_lenet5"] = depths.get("lenet5")


__all__ = ["GaussianNoise", "PartsConfig", "depth_by_model", "run", "steps_to_loss"]
