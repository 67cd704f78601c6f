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

from convscope.analysis.clustering import layer_clustering, representation_layers
from convscope.analysis.linearity import affine_map, max_affine_error
from convscope.analysis.polarity import (
    exact_polarity_swap,
    first_conv,
    negate_conv,
    patch_correlations,
    polarity_accuracy,
    swap_mismatches,
)
from convscope.config import TrainConfig, to_dict
from convscope.data.transforms import background_indices, background_params, backgrounds, composite, invert
from convscope.experiments import register_experiment
from convscope.hooks import activations
from convscope.io import atomic_write_bytes
from convscope.report import figures_recos as figs
from convscope.result import Published, Result, versions
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
BY_SEED = ["acc_negated_original", "acc_negated_inverted", "conv1_dc_cosine"]
BACKGROUND_LAYERS = ["input", "features.relu1", "features.relu2", "classifier.relu3", "classifier.relu4"]


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
        """`convscope lab`'s size: one seed and half the training set (no standard deviations)."""
        return cls(seeds=[0], train=replace(cls().train, train_subset=30000))


@register_experiment("recos", "RECOS: polarity, anchors, linear collapse, backgrounds, clustering (Kuo 2016)",
                     RecosConfig)
def run(cfg: RecosConfig, out_dir: Path, progress: bool = True) -> Result:
    """Train every network of every seed, measure, and write the figures into `out_dir`."""
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    (x_train, y_train), (x_test, y_test), data_info = load_data(cfg.train, progress=progress)
    bgs = backgrounds(cfg.backgrounds, x_train.shape[-1], seed=cfg.background_seed)
    bg_train = composite(x_train, bgs, background_indices(len(x_train), cfg.backgrounds, cfg.background_seed + 1),
                         cfg.background_alpha)
    test_idx = background_indices(len(x_test), cfg.backgrounds, cfg.background_seed + 2)
    bg_test = composite(x_test, bgs, test_idx, cfg.background_alpha)
    # One test digit on each texture, for the gallery.
    gallery = [int((test_idx == k).nonzero()[0]) for k in range(cfg.backgrounds) if (test_idx == k).any()]
    # One fixed held-out sample for the clustering and anchor studies, the same for every seed.
    order = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(0))
    pick = order[:min(cfg.cluster_images, len(x_test))]

    per_seed: list[dict[str, Any]] = []
    keep: dict[str, Any] = {}  # what the figures of the first seed need
    train_seconds: dict[str, float] = {}  # per network, summed over seeds
    for seed in cfg.seeds:
        tcfg = replace(cfg.train, seed=seed)
        device = resolve_device(tcfg.device)
        sets = {"original": (x_train, x_test), "half_inverted": (_half_inverted(x_train, seed), x_test),
                "background": (bg_train, bg_test)}
        nets: dict[str, nn.Module] = {}
        for name, (args, images) in NETWORKS.items():
            ncfg = replace(tcfg, model_args={**tcfg.model_args, **args})
            model = build_model(ncfg, x_train.shape[1], len(data_info["classes"]), device)
            fitted = fit(model, (sets[images][0], y_train), (sets[images][1], y_test), ncfg, progress=progress)
            train_seconds[name] = train_seconds.get(name, 0.0) + fitted.train_seconds
            nets[name] = model
        m, extra = _analyse(cfg, nets, x_test, y_test, bg_test, pick)
        per_seed.append(m)
        if not keep:
            keep = {**extra, "conv1_weight": m["conv1_weight"], "bg_textures": bgs,
                    "bg_examples": bg_test[gallery, 0].numpy()}

    metrics = _aggregate(per_seed)
    for key in BY_SEED:  # where the seeds disagree, each one's figure
        metrics[f"{key}_by_seed"] = [m[key] for m in per_seed]
    figures = _write_figures(out_dir, metrics, keep)
    layers = keep["layers"]
    metrics = {"layers": layers, **metrics}
    arrays = {
        "conv1_weight_by_seed": np.stack([m["conv1_weight"] for m in per_seed]),  # (seeds, 6, 1, 5, 5)
        "linear_A_seed0": keep["A"],  # (classes, 784)
        "backgrounds": bgs,  # (n, 28, 28)
        "knn_acc_by_seed_layer": np.array([m["knn_acc_by_layer"] for m in per_seed]),
        "scatter_ratio_by_seed_layer": np.array([m["scatter_ratio_by_layer"] for m in per_seed]),
    }
    return Result(
        name="recos",
        title="RECOS on LeNet-5 and MNIST (Kuo 2016)",
        metrics=metrics,
        published=_published(),
        provenance={"config": to_dict(cfg), "seeds": cfg.seeds, "versions": versions(),
                    "data_checksum": data_info["train_checksum"], "data": data_info,
                    "background_generator": {"seed": cfg.background_seed, "n": cfg.backgrounds,
                                             "alpha": cfg.background_alpha,
                                             "index_seeds": {"train": cfg.background_seed + 1,
                                                             "test": cfg.background_seed + 2},
                                             "params": _by_field(background_params(cfg.backgrounds,
                                                                                   cfg.background_seed)),
                                             "doc": "convscope.data.transforms (smoothed noise + grating)"},
                    "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - t0},
        figures=figures,
        arrays=arrays,
        notes=_notes(cfg),
    )


def _analyse(cfg: RecosConfig, nets: dict[str, nn.Module], x_test: torch.Tensor, y_test: torch.Tensor,
             bg_test: torch.Tensor, pick: torch.Tensor) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every measurement on one seed's networks: (metrics of the seed, arrays for the figures)."""
    clean = nets["clean"]
    m: dict[str, Any] = {}
    m["acc_original"], m["acc_inverted"] = polarity_accuracy(clean, x_test, y_test)
    m["acc_negated_original"], m["acc_negated_inverted"] = polarity_accuracy(negate_conv(clean), x_test, y_test)
    swapped = exact_polarity_swap(clean)
    m["acc_exact_swap_original"], m["acc_exact_swap_inverted"] = polarity_accuracy(swapped, x_test, y_test)
    swap = swap_mismatches(clean, swapped, x_test)
    negated = swap_mismatches(clean, negate_conv(clean), x_test)
    m["exact_swap_mismatches"], m["exact_swap_max_logit_diff"] = swap["mismatches"], swap["max_logit_diff"]
    m["negated_swap_mismatches"] = negated["mismatches"]
    for name in ("both_polarity", "crelu_first"):
        m[f"{name}_acc_original"], m[f"{name}_acc_inverted"] = polarity_accuracy(nets[name], x_test, y_test)

    # Anchor vectors: cosines of the interior patches (the ones inversion maps to 1 − p) that are not
    # flat, i.e. that hold part of a stroke; flat patches (blank, or all ink) have no direction.
    conv1 = clean.get_submodule(first_conv(clean))
    xa = x_test[pick[:cfg.anchor_images]].to(conv1.weight.device, torch.float64)  # float64: near-flat patches
    corr = {(c, inv): patch_correlations(conv1, invert(xa) if inv else xa, centered=c).flatten(0, 1).cpu().numpy()
            for c in (False, True) for inv in (False, True)}  # each (patches, K)
    stroke = np.isfinite(corr[(True, False)]).all(axis=1)  # the same patches are flat after inversion
    corr = {k: v[stroke] for k, v in corr.items()}
    raw_o, raw_i = corr[(False, False)], corr[(False, True)]
    m["anchor_raw_sign_flip_frac"] = float((np.sign(raw_o) != np.sign(raw_i)).mean())
    m["anchor_centred_flip_max_err"] = float(np.abs(corr[(True, False)] + corr[(True, True)]).max())
    m["conv1_weight"] = conv1.weight.detach().cpu().numpy()
    # How far the anchors are from zero mean: |cos(a_k, 1)|, averaged over filters. The article's
    # weight-only negation is close to exact (inside the image) only when this is near 0.
    anchors = conv1.weight.detach().flatten(1).double()  # (K, D)
    m["conv1_dc_cosine"] = float((anchors.sum(1).abs() / (anchors.norm(dim=1) * anchors.shape[1] ** 0.5)).mean())

    # Linear collapse: one affine map, checked on test images.
    linear = nets["linear"]
    A, b = affine_map(linear, tuple(x_test.shape[1:]))
    m["linear_collapse_max_abs_diff"] = max_affine_error(linear, A, b, x_test[:cfg.linear_check_images])
    m["acc_linear"] = evaluate(linear, x_test, y_test)["acc"]
    pred = (x_test.flatten(1).to(A) @ A.T + b).argmax(1).cpu()  # the map alone, (N,)
    m["acc_linear_map"] = float((pred == y_test).float().mean())

    # Background MNIST.
    bg_net = nets["background"]
    m["acc_background"] = evaluate(bg_net, bg_test, y_test)["acc"]
    m["acc_clean_model_on_background"] = evaluate(clean, bg_test, y_test)["acc"]
    m["acc_background_model_on_clean"] = evaluate(bg_net, x_test, y_test)["acc"]
    m["background_similarity_by_layer"] = _background_similarity(bg_net, bg_test[pick[:500]], x_test[pick[:500]])

    # Layer-by-layer clustering of the clean network on held-out test images.
    names = representation_layers(clean)
    reps = {"input": x_test[pick], **activations(clean, x_test[pick], names)}
    clus = layer_clustering(reps, y_test[pick], k=cfg.knn_k)
    m["knn_acc_by_layer"], m["scatter_ratio_by_layer"] = clus.knn_acc, clus.scatter_ratio

    three = _one_per_class(y_test[pick], 3)
    maps = activations(bg_net, bg_test[pick][three], ["features.conv1", "features.relu1", "features.conv2",
                                                      "features.relu2"])
    extra = {"A": A.float().cpu().numpy(), "corr": corr, "layers": clus.layers,
             "bg_images": bg_test[pick][three, 0].numpy(), "bg_maps": {k: v.cpu().numpy() for k, v in maps.items()}}
    return m, extra


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
    return [int((y == c).nonzero()[0]) for c in torch.unique(y)[:n]]


def _aggregate(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std (ddof 1) over seeds; counts summed, worst cases maxed, arrays left out."""
    out: dict[str, Any] = {}
    for key, first in per_seed[0].items():
        values = [m[key] for m in per_seed]
        if key.endswith("mismatches"):
            out[key] = int(sum(values))
        elif key.endswith(("max_abs_diff", "max_logit_diff", "max_err")):
            out[key] = float(max(values))
        elif isinstance(first, float | int | list):
            arr = np.array(values, dtype=float)  # (seeds,) or (seeds, layers)
            mean = arr.mean(axis=0)
            std = arr.std(axis=0, ddof=1) if len(arr) > 1 else np.zeros_like(mean)
            std = np.where(np.ptp(arr, axis=0) == 0, 0.0, std)  # equal values: 0, not rounding noise
            out[key] = mean.tolist() if arr.ndim > 1 else float(mean)
            out[f"{key}_std"] = std.tolist() if arr.ndim > 1 else float(std)
    return out


def _write_figures(out_dir: Path, metrics: dict[str, Any], keep: dict[str, Any]) -> dict[str, str]:
    """Render every figure into `out_dir`; returns {caption: file name}."""
    rows = [("trained", "acc"), ("conv1 negated (article)", "acc_negated"),
            ("exact swap (b + ΣW, pad 1)", "acc_exact_swap"), ("both polarities", "both_polarity_acc"),
            ("CReLU conv1, originals", "crelu_first_acc")]
    keys = [(f"{p}_original", f"{p}_inverted") for _, p in rows]
    mean = np.array([[metrics[a], metrics[b]] for a, b in keys])
    std = np.array([[metrics[f"{a}_std"], metrics[f"{b}_std"]] for a, b in keys])
    published = {"trained": (0.9894, 0.3736), "conv1 negated (article)": (0.3736, 0.9894)}
    layers = keep["layers"]
    parts = ["input" if n == "input" else "FE" if n.startswith("features.") else "DM" for n in layers]
    maps = keep["bg_maps"]
    files = {
        "polarity.png": figs.polarity_bars([r for r, _ in rows], mean, std, published),
        "anchors.png": figs.anchor_figure(keep["conv1_weight"]),
        "anchor_correlations.png": figs.correlation_histograms(
            (keep["corr"][(False, False)], keep["corr"][(False, True)]),
            (keep["corr"][(True, False)], keep["corr"][(True, True)])),
        "linear_templates.png": figs.linear_templates(keep["A"]),
        "backgrounds.png": figs.background_gallery(keep["bg_textures"], keep["bg_examples"]),
        "background_maps.png": figs.background_maps(keep["bg_images"], {
            "conv1": (maps["features.conv1"], maps["features.relu1"]),
            "conv2": (maps["features.conv2"], maps["features.relu2"])}),
        "clustering.png": figs.clustering_by_depth(
            layers, (np.array(metrics["knn_acc_by_layer"]), np.array(metrics["knn_acc_by_layer_std"])),
            (np.array(metrics["scatter_ratio_by_layer"]), np.array(metrics["scatter_ratio_by_layer_std"])), parts),
    }
    for name, data in files.items():
        atomic_write_bytes(out_dir / name, data)
    captions = [
        "Accuracy on original and inverted test digits (mean ± std over seeds; black: published)",
        "The conv1 filters of the first seed as unit anchor vectors a_k, and their opposites −a_k",
        "Cosine of each interior 5×5 patch with each anchor, original (blue) against inverted (red) inputs: "
        "raw patches (top) and mean-removed patches (bottom, an exact mirror); ReLU keeps the positive side "
        "(shifted by each unit's bias)",
        "The linear network (no activations, average pooling) collapsed: one template per class, the rows of A",
        "The seeded background textures (top) and a test digit composited on each (bottom)",
        "Three background test inputs and the 6 conv1 and 16 conv2 maps of the background-trained network, "
        "before and after ReLU (each panel scaled to its own largest |value|)",
        "k-NN accuracy and between/within-class scatter ratio of every layer on held-out test images, by depth",
    ]
    return dict(zip(captions, files, strict=True))


def _published() -> dict[str, Published]:
    return {
        "acc_original": Published(0.9894, KUO, "LeNet-5 on the MNIST test set"),
        "acc_inverted": Published(0.3736, KUO, "the same network on 255 − x"),
        "acc_negated_original": Published(0.3736, KUO, "every conv1 weight negated"),
        "acc_negated_inverted": Published(0.9894, KUO, "every conv1 weight negated"),
        "exact_swap_mismatches": Published(0, "docs/REFERENCE.md §3",
                                           "exact only with b′ = b + ΣW and the padding border inverted"),
        "both_polarity_acc_original": Published("high", KUO, "remedy: keep anchors of both polarities"),
        "both_polarity_acc_inverted": Published("high", KUO, "remedy: keep anchors of both polarities"),
        "linear_collapse_max_abs_diff": Published(0, KUO, "without activations the network is one linear map"),
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
        "(per-seed figures in acc_negated_*_by_seed and conv1_dc_cosine_by_seed).",
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
    ]
