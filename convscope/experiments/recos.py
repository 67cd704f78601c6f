"""`reproduce recos`: Kuo's RECOS signal-analysis experiments on LeNet-5 and MNIST.

Kuo, "Understanding convolutional neural networks with a mathematical model", JVCIR 41, 2016
(arXiv 1609.04112; docs/REFERENCE.md §3). Every trained figure is the mean and standard deviation over
`seeds`, each seed training its own networks with the fast recipe of `TrainConfig`:

1. Polarity: LeNet-5 on original and grey-inverted (1 − x) test digits; the article's conv1 weight
   negation; the exact swap (bias b + ΣW, input padded with 1; `analysis.polarity`), which swaps the
   two accuracies image by image; and two remedies: a network trained on both polarities (half of
   the training images inverted, chosen at random per seed, so it costs what the clean one costs)
   and a CReLU first layer trained on originals only.
2. Anchor vectors: the conv1 filters as unit anchors and the cosine of every interior 5×5 patch with
   every anchor, for original and inverted test digits (raw, and centred, where the flip is exact).
3. Linear collapse: LeNet-5 without activations and with *average* pooling (max pooling is itself
   nonlinear) is one affine map A·vec(x) + b (`analysis.linearity`): its outputs are checked against
   the map, and its accuracy compared with the nonlinear network's.
4. Background MNIST: digits composited on 10 seeded textures (`data.transforms`); a network trained
   and tested on them, the conv1/conv2 maps of three inputs before and after ReLU, and how close
   each layer's representation of a composite is to that of the bare digit.
5. Layer-by-layer clustering: k-NN accuracy and scatter ratio of every layer of the clean network
   on held-out test images (`analysis.clustering`), the FE (`model.features`) and DM
   (`model.classifier`) parts marked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convscope.analysis.clustering import clustering_scan, representation_layers
from convscope.analysis.linearity import affine_map, max_affine_error
from convscope.analysis.polarity import (
    exact_polarity_swap,
    first_conv,
    negate_conv,
    patch_correlations,
    polarity_accuracy,
    swap_mismatches,
)
from convscope.config import TrainConfig
from convscope.data.transforms import background_indices, background_params, backgrounds, composite, invert
from convscope.experiments import register_experiment
from convscope.hooks import activations
from convscope.result import Published, Result, provenance
from convscope.train.loop import evaluate, fit, resolve_device
from convscope.train.run import build_model, load_data

KUO = "Kuo 2016, JVCIR (docs/REFERENCE.md §3)"
# The networks each seed trains: name -> (model_args, training images). Test images are the originals,
# except for the background network, which is tested on background digits.
NETWORKS = {
    "clean": ({}, "original"),
    "both_polarity": ({}, "half_inverted"),
    "crelu_first": ({"first_activation": "crelu"}, "original"),
    "linear": ({"activation": "none", "pool": "avg"}, "original"),
    "background": ({}, "background"),
}
BACKGROUND_LAYERS = ["input", "features.relu1", "features.relu2", "classifier.relu3", "classifier.relu4"]
BACKGROUND_MAPS = ["features.conv1", "features.relu1", "features.conv2", "features.relu2"]  # drawn for 3 inputs
BY_SEED_ARRAYS = {"conv1_weight"}  # arrays every seed keeps; the rest are the first seed's
WORST_CASE = ("max_abs_diff", "max_logit_diff", "max_err")  # figures whose metric is the largest over seeds
SAVED_PATCHES = 4000  # patch cosines saved for the histograms (of the anchor_images × positions measured)


@dataclass
class RecosConfig:
    """Seeds, the training recipe of every network, and the sizes of the analyses."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train: TrainConfig = field(default_factory=lambda: TrainConfig(model="lenet5", data="mnist", epochs=2))
    backgrounds: int = 10  # textures of the background experiment
    background_seed: int = 0  # seeds the textures; +1 and +2 seed which texture each train/test image gets
    background_alpha: float = 0.5  # brightness of the background under empty pixels
    anchor_images: int = 200  # test images whose patches are correlated with the anchors
    cluster_images: int = 2000  # held-out test images of the clustering study (half references, half queries)
    knn_k: int = 5
    linear_check_images: int = 1000  # test images on which the linear network is checked against its map

    @classmethod
    def lab(cls) -> RecosConfig:
        """`convscope lab`'s size: one seed, 12,000 training and 5,000 test images (no standard deviations)."""
        return cls(seeds=[0], train=replace(cls().train, train_subset=12000, test_subset=5000))


@register_experiment("recos", "RECOS: polarity, anchors, linear collapse, backgrounds, clustering (Kuo 2016)",
                     RecosConfig)
def run(cfg: RecosConfig, out_dir: Path, progress: bool = True) -> Result:
    """Train every network of every seed and measure; `convscope.report.pages.recos` draws the figures."""
    t0 = time.perf_counter()
    (x_train, y_train), (x_test, y_test), data_info = load_data(cfg.train, progress=progress)
    bg = _background_data(cfg, x_train, x_test)
    # One fixed held-out sample for the clustering and anchor studies, the same for every seed.
    order = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(0))
    pick = order[:min(cfg.cluster_images, len(x_test))]

    seeds: list[SeedMeasures] = []
    train_seconds: dict[str, float] = {}  # per network, summed over seeds
    for seed in cfg.seeds:
        sets = {"original": (x_train, x_test), "half_inverted": (_half_inverted(x_train, seed), x_test),
                "background": (bg.train, bg.test)}
        nets = _train_networks(cfg, seed, sets, y_train, y_test, len(data_info["classes"]), train_seconds,
                               progress)
        seeds.append(_analyse(cfg, nets, x_test, y_test, bg.test, pick, keep_arrays=not seeds))
    return _result(cfg, seeds, bg, data_info, train_seconds, len(x_test), t0)


@dataclass
class SeedMeasures:
    """What one seed's networks measured: scalar figures, per-layer lists, and arrays for the figures."""

    scalars: dict[str, float] = field(default_factory=dict)
    per_layer: dict[str, list[float]] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)


@dataclass
class _Backgrounds:
    textures: np.ndarray  # (n, H, W)
    train: torch.Tensor  # composites of the training digits
    test: torch.Tensor  # composites of the test digits
    gallery: list[int]  # one test index per texture


def _background_data(cfg: RecosConfig, x_train: torch.Tensor, x_test: torch.Tensor) -> _Backgrounds:
    """The seeded textures and every digit composited on one of them (docs/REFERENCE.md §3)."""
    bgs = backgrounds(cfg.backgrounds, x_train.shape[-1], seed=cfg.background_seed)
    train_idx = background_indices(len(x_train), cfg.backgrounds, cfg.background_seed + 1)
    test_idx = background_indices(len(x_test), cfg.backgrounds, cfg.background_seed + 2)
    gallery = [int((test_idx == k).nonzero()[0][0]) for k in range(cfg.backgrounds) if (test_idx == k).any()]
    return _Backgrounds(bgs, composite(x_train, bgs, train_idx, cfg.background_alpha),
                        composite(x_test, bgs, test_idx, cfg.background_alpha), gallery)


def _train_networks(cfg: RecosConfig, seed: int, sets: dict[str, tuple[torch.Tensor, torch.Tensor]],
                    y_train: torch.Tensor, y_test: torch.Tensor, classes: int, train_seconds: dict[str, float],
                    progress: bool) -> dict[str, nn.Module]:
    """Every network of `NETWORKS` trained with one seed on its training images."""
    tcfg = replace(cfg.train, seed=seed)
    device = resolve_device(tcfg.device)
    nets: dict[str, nn.Module] = {}
    for name, (args, images) in NETWORKS.items():
        ncfg = replace(tcfg, model_args={**tcfg.model_args, **args})
        x_train, x_test = sets[images]
        model = build_model(ncfg, x_train.shape[1], classes, device)
        fitted = fit(model, (x_train, y_train), (x_test, y_test), ncfg, progress=progress)
        train_seconds[name] = train_seconds.get(name, 0.0) + fitted.train_seconds
        nets[name] = model
    return nets


def _analyse(cfg: RecosConfig, nets: dict[str, nn.Module], x_test: torch.Tensor, y_test: torch.Tensor,
             bg_test: torch.Tensor, pick: torch.Tensor, keep_arrays: bool) -> SeedMeasures:
    """Every measurement on one seed's networks; the figures' arrays only when `keep_arrays` (first seed)."""
    out = SeedMeasures()
    for part in (_polarity(nets, x_test, y_test), _anchors(nets["clean"], x_test[pick[:cfg.anchor_images]]),
                 _linear(cfg, nets["linear"], x_test, y_test),
                 _background(nets["background"], nets["clean"], x_test, y_test, bg_test, pick),
                 _clustering(cfg, nets["clean"], x_test[pick], y_test[pick])):
        out.scalars.update(part.scalars)
        out.per_layer.update(part.per_layer)
        out.arrays.update(part.arrays)
        out.layers = part.layers or out.layers
    if not keep_arrays:  # later seeds keep only what is stacked over seeds
        out.arrays = {k: v for k, v in out.arrays.items() if k in BY_SEED_ARRAYS}
    return out


def _polarity(nets: dict[str, nn.Module], x_test: torch.Tensor, y_test: torch.Tensor) -> SeedMeasures:
    """Accuracy on original and inverted digits: trained, conv1 negated, exact swap, and the two remedies."""
    clean = nets["clean"]
    s: dict[str, float] = {}
    s["acc_original"], s["acc_inverted"] = polarity_accuracy(clean, x_test, y_test)
    s["acc_negated_original"], s["acc_negated_inverted"] = polarity_accuracy(negate_conv(clean), x_test, y_test)
    swapped = exact_polarity_swap(clean)
    s["acc_exact_swap_original"], s["acc_exact_swap_inverted"] = polarity_accuracy(swapped, x_test, y_test)
    swap = swap_mismatches(clean, swapped, x_test)
    negated = swap_mismatches(clean, negate_conv(clean), x_test)
    s["exact_swap_mismatches"], s["exact_swap_max_logit_diff"] = swap["mismatches"], swap["max_logit_diff"]
    s["negated_swap_mismatches"] = negated["mismatches"]
    for name in ("both_polarity", "crelu_first"):
        s[f"{name}_acc_original"], s[f"{name}_acc_inverted"] = polarity_accuracy(nets[name], x_test, y_test)
    return SeedMeasures(scalars=s)


def _anchors(clean: nn.Module, x: torch.Tensor) -> SeedMeasures:
    """conv1's filters as anchor vectors, and the cosine of every stroke patch with every anchor.

    Only interior patches (the ones inversion maps to 1 − p) that are not flat, i.e. that hold part of
    a stroke, count; flat patches (blank, or all ink) have no direction.
    """
    conv1 = clean.get_submodule(first_conv(clean))
    xa = x.to(conv1.weight.device, torch.float64)  # float64: near-flat patches
    corr = {(c, inv): patch_correlations(conv1, invert(xa) if inv else xa, centered=c).flatten(0, 1).cpu().numpy()
            for c in (False, True) for inv in (False, True)}  # each (patches, K)
    stroke = np.isfinite(corr[(True, False)]).all(axis=1)  # the same patches are flat after inversion
    corr = {k: v[stroke] for k, v in corr.items()}
    s = {"anchor_raw_sign_flip_frac": float((np.sign(corr[(False, False)]) != np.sign(corr[(False, True)])).mean()),
         "anchor_centred_flip_max_err": float(np.abs(corr[(True, False)] + corr[(True, True)]).max())}
    # How far the anchors are from zero mean: |cos(a_k, 1)|, averaged over filters. The article's
    # weight-only negation is close to exact (inside the image) only when this is near 0.
    anchors = conv1.weight.detach().flatten(1).double()  # (K, D)
    s["conv1_dc_cosine"] = float((anchors.sum(1).abs() / (anchors.norm(dim=1) * anchors.shape[1] ** 0.5)).mean())
    # The histograms need only a sample of the patches: a seeded subsample keeps result.npz small.
    rows = np.random.default_rng(0).permutation(int(stroke.sum()))[:SAVED_PATCHES]
    cosines = np.stack([np.stack([corr[(c, False)][rows], corr[(c, True)][rows]]) for c in (False, True)])
    return SeedMeasures(scalars=s, arrays={"conv1_weight": conv1.weight.detach().cpu().numpy().astype(np.float32),
                                           "anchor_cosines": cosines.astype(np.float32)})  # (2, 2, n, K)


def _linear(cfg: RecosConfig, linear: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor) -> SeedMeasures:
    """The network without activations as one affine map, checked on test images."""
    A, b = affine_map(linear, tuple(x_test.shape[1:]))
    s = {"linear_collapse_max_abs_diff": max_affine_error(linear, A, b, x_test[:cfg.linear_check_images]),
         "acc_linear": evaluate(linear, x_test, y_test)["acc"]}
    pred = (x_test.flatten(1).to(A) @ A.T + b).argmax(1).cpu()  # the map alone, (N,)
    s["acc_linear_map"] = float((pred == y_test).float().mean())
    return SeedMeasures(scalars=s, arrays={"linear_A": A.float().cpu().numpy()})  # (classes, H·W)


def _background(bg_net: nn.Module, clean: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor,
                bg_test: torch.Tensor, pick: torch.Tensor) -> SeedMeasures:
    """Background MNIST: accuracies, how close each layer keeps a composite to its bare digit, three inputs' maps."""
    s = {"acc_background": evaluate(bg_net, bg_test, y_test)["acc"],
         "acc_clean_model_on_background": evaluate(clean, bg_test, y_test)["acc"],
         "acc_background_model_on_clean": evaluate(bg_net, x_test, y_test)["acc"]}
    similarity = _background_similarity(bg_net, bg_test[pick[:500]], x_test[pick[:500]])
    three = _one_per_class(y_test[pick], 3)
    inputs = bg_test[pick][three]
    maps = activations(bg_net, inputs, BACKGROUND_MAPS)
    arrays = {"background_inputs": inputs[:, 0].numpy().astype(np.float32),  # (3, H, W)
              **{f"background_maps.{k}": v.cpu().numpy().astype(np.float32) for k, v in maps.items()}}
    return SeedMeasures(scalars=s, per_layer={"background_similarity_by_layer": similarity}, arrays=arrays)


def _clustering(cfg: RecosConfig, clean: nn.Module, x: torch.Tensor, y: torch.Tensor) -> SeedMeasures:
    """k-NN accuracy and scatter ratio of every layer of the clean network on held-out test images."""
    clus = clustering_scan(clean, x, y, representation_layers(clean), k=cfg.knn_k, batch_size=len(x))
    return SeedMeasures(per_layer={"knn_acc_by_layer": list(clus.knn_acc),
                                   "scatter_ratio_by_layer": list(clus.scatter_ratio)}, layers=list(clus.layers))


def _background_similarity(model: nn.Module, composites: torch.Tensor, digits: torch.Tensor) -> list[float]:
    """Mean cosine between each layer's representation of a composite and of its bare digit."""
    names = BACKGROUND_LAYERS[1:]
    with_bg = {"input": composites, **activations(model, composites, names)}
    bare = {"input": digits, **activations(model, digits, names)}
    return [float(F.cosine_similarity(with_bg[n].flatten(1).cpu(), bare[n].flatten(1).cpu(), dim=1).mean())
            for n in BACKGROUND_LAYERS]


def _by_field(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    """A list of records as one list per field (reads better in result.json and the atlas)."""
    return {key: [row[key] for row in rows] for key in rows[0]} if rows else {}


def _half_inverted(x: torch.Tensor, seed: int) -> torch.Tensor:
    """`x` with a seeded random half of the images inverted: the both-polarity training set."""
    flip = torch.rand(len(x), generator=torch.Generator().manual_seed(seed)) < 0.5  # (N,)
    return torch.where(flip.view(-1, 1, 1, 1).to(x.device), invert(x), x)


def _one_per_class(y: torch.Tensor, n: int) -> list[int]:
    """Indices of the first example of each of the first `n` classes present in `y`."""
    return [int((y == c).nonzero()[0][0]) for c in torch.unique(y)[:n]]


def _aggregate(seeds: list[SeedMeasures]) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """(metrics, by_seed): over seeds, counts are summed, worst cases maxed, the rest averaged; every
    scalar's per-seed values go to by_seed, per-layer lists are averaged layer by layer."""
    metrics: dict[str, Any] = {}
    by_seed: dict[str, list[float]] = {}
    for key in seeds[0].scalars:
        values = [s.scalars[key] for s in seeds]
        by_seed[key] = [int(v) if key.endswith("mismatches") else float(v) for v in values]
        if key.endswith("mismatches"):
            metrics[key] = int(sum(values))
        elif key.endswith(WORST_CASE):
            metrics[key] = float(max(values))
        else:
            metrics[key] = float(np.mean(values))
    for key in seeds[0].per_layer:
        metrics[key] = np.mean([s.per_layer[key] for s in seeds], axis=0).tolist()
    return metrics, by_seed


def _result(cfg: RecosConfig, seeds: list[SeedMeasures], bg: _Backgrounds, data_info: dict[str, Any],
            train_seconds: dict[str, float], test_images: int, t0: float) -> Result:
    """The Result: means in metrics, each seed's figures in by_seed, the first seed's arrays for the figures."""
    metrics, by_seed = _aggregate(seeds)
    first = seeds[0].arrays
    arrays = {
        "conv1_weight_by_seed": np.stack([s.arrays["conv1_weight"] for s in seeds]),  # (seeds, 6, 1, 5, 5)
        **{key.replace("_by_layer", "_by_seed_layer"): np.array([s.per_layer[key] for s in seeds], np.float32)
           for key in seeds[0].per_layer},  # each (seeds, layers)
        **{k: v for k, v in first.items() if k not in BY_SEED_ARRAYS},
        "backgrounds": bg.textures.astype(np.float32),  # (n, H, W)
        "background_examples": bg.test[bg.gallery, 0].numpy().astype(np.float32),  # one digit per texture
    }
    generator = {"seed": cfg.background_seed, "n": cfg.backgrounds, "alpha": cfg.background_alpha,
                 "index_seeds": {"train": cfg.background_seed + 1, "test": cfg.background_seed + 2},
                 "params": _by_field(background_params(cfg.backgrounds, cfg.background_seed)),
                 "doc": "convscope.data.transforms (smoothed noise + grating)"}
    return Result(
        name="recos",
        title="RECOS on LeNet-5 and MNIST (Kuo 2016)",
        metrics={"layers": seeds[0].layers, "background_layers": BACKGROUND_LAYERS, "test_images": test_images,
                 "epochs": cfg.train.epochs, **metrics},
        by_seed=by_seed,
        published=_published(),
        provenance=provenance(cfg, cfg.seeds, data_info, t0, background_generator=generator,
                              train_seconds=train_seconds),
        arrays=arrays,
        notes=_notes(cfg),
    )


def _published() -> dict[str, Published]:
    """Kuo's figures, and what the mathematics says, each with the tolerance of its verdict."""
    same_net = ("±0.5 points: a LeNet-5 trained to convergence lands within half a point of it, whatever "
                "the recipe")
    collapse = ("one network's figure; on inverted digits each network fails in its own way (seeds differ by "
                "many points), so ±15 points counts a collapse to about a third as the same finding")
    return {
        "acc_original": Published(0.9894, KUO, "LeNet-5 on the MNIST test set; " + same_net, tolerance=0.005),
        "acc_inverted": Published(0.3736, KUO, "the same network on 255 − x; " + collapse, tolerance=0.15),
        "acc_negated_original": Published(0.3736, KUO, "every conv1 weight negated, original digits; " + collapse,
                                          tolerance=0.15),
        "acc_negated_inverted": Published(0.9894, KUO, "every conv1 weight negated, inverted digits: the article "
                                          "finds the trained accuracy again; " + same_net, tolerance=0.005),
        "exact_swap_mismatches": Published(
            0, "docs/REFERENCE.md §3", "with b′ = b + ΣW and the input padded with 1, conv1 on 1 − x equals conv1 "
            "on x, so no prediction may change (both directions, every test image; near ties rechecked in "
            "float64); tolerance 0", kind="expected (theory)", tolerance=0),
        "anchor_centred_flip_max_err": Published(
            0, "docs/REFERENCE.md §3", "a mean-removed patch of 1 − x is minus that of x, so its cosine with every "
            "anchor flips sign exactly; ±1e-9 is float64 rounding", kind="expected (theory)", tolerance=1e-9),
        "linear_collapse_max_abs_diff": Published(
            0, KUO + " and docs/REFERENCE.md §3", "without activations, with average pooling, the network is one "
            "affine map; ±1e-4 allows the float32 forward pass (errors near 1e-6 on logits of order 10), while a "
            "nonlinear layer would be off by order 1", kind="expected (theory)", tolerance=1e-4),
        "both_polarity_acc_original": Published("high", KUO, "remedy: keep anchors of both polarities"),
        "both_polarity_acc_inverted": Published("high", KUO, "remedy: keep anchors of both polarities"),
        "crelu_first_acc_inverted": Published("high", KUO, "remedy: keep the negative phase (a CReLU first layer, "
                                              "trained on originals only)"),
    }


def _notes(cfg: RecosConfig) -> list[str]:
    return [
        f"Every network is the modern LeNet-5 trained for {cfg.train.epochs} epochs with the fast recipe "
        f"(Adam, one-cycle, label smoothing); figures are mean ± std over seeds {cfg.seeds}.",
        "Inversion is 1 − x on [0, 1] pixels, the article's 255 − x.",
        "The article's negation flips conv1's weights only; on inverted input that leaves −ΣW per filter and a "
        "zero border that should be 1, so it is not an exact swap. The exact swap adds ΣW to each bias and pads "
        "the input with 1; its two accuracies are the trained network's, swapped, image by image.",
        "conv1_dc_cosine is |cos(a_k, 1)| averaged over the anchors: the article's negation leaves −ΣW = "
        "−‖W_k‖·√25·cos(a_k, 1) per filter, so it approaches an exact swap only where this is near 0 "
        "(each seed's figure in by_seed).",
        "Both-polarity network: a seeded random half of the training images is inverted. CReLU network: "
        "conv1 followed by CReLU (conv2 sees 12 maps), trained on originals only.",
        "Linear network: every activation removed and average pooling instead of max pooling (max pooling is "
        "itself nonlinear); its outputs are checked against the recovered affine map on test images.",
        f"Background MNIST: {cfg.backgrounds} textures (smoothed Gaussian noise mixed with a sinusoidal grating, "
        f"seed {cfg.background_seed}; parameters in provenance), composited as x + (1 − x)·{cfg.background_alpha}·bg; "
        "background_similarity_by_layer is the mean cosine between a layer's representation of a composite and "
        f"of the bare digit, for {', '.join(BACKGROUND_LAYERS)}.",
        f"Clustering: {cfg.cluster_images} held-out test images, half k-NN references and half queries "
        f"(k = {cfg.knn_k}); the scatter ratio is trace(S_B)/trace(S_W) over all of them.",
        "exact_swap_mismatches counts both directions (swapped(1 − x) against the network on x, and swapped(x) "
        "against it on 1 − x) over every test image, summed over seeds.",
        f"The anchors, patch cosines, linear templates and background maps are drawn from the first seed's "
        f"networks (seed {cfg.seeds[0]}); the patch histograms from a seeded sample of at most {SAVED_PATCHES} of "
        f"the stroke patches of {cfg.anchor_images} test digits, while the figures in the metrics use them all.",
    ]
