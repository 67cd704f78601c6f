"""`reproduce zf`: Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014
(docs/REFERENCE.md §5), on small networks a CPU trains in minutes.

For each network studied (LeNet-5 on MNIST; ConvPool-CNN-C at a quarter width on Fashion-MNIST, `second`):
1. it is trained here keeping every epoch's weights (or the final model of a run directory, `run`, is studied);
2. Fig. 2: for every channel of every conv layer, the top-9 training images by the channel's largest activation,
   each as the input patch under the activation's receptive field beside the deconvnet projection of that one
   activation;
3. Fig. 7: for a few test images, a grey square slid over the image and, at each position, the total activity of
   the strongest map of the occlusion layer, the correct class's probability and the most probable label, with
   the projection of that map (`explain.occlusion_maps`); and over a test subset, "occlusion pointing": how often
   the position where the correct class's probability drops most is centred on the digit or garment (pixels
   brighter than `ink_threshold`), beside the chance of a position picked at random;
4. Fig. 4: for chosen channels of each conv layer, the strongest training image at every epoch, and each layer's
   settle epoch (analysis.evolution): the paper finds lower layers settle within a few epochs, upper ones late.

The instruments: `explain.deconvnet` (the explicit projection with switches), `analysis.topk` (the streaming
top-k scan and receptive boxes), `explain.Occlusion` (exact incremental occlusion, checked here against full
re-inference). The Result holds arrays only; `report/pages/zf.py` draws the figures.

On the user's CIFAR files: `--set train.data=cifar10 --set train.model=allconv-c --set root=DIR --set second=`
(the colour images keep their channels; "ink", the bright pixels, is then no object mask, so read the pointing
by the projection's region there).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from convscope.analysis.evolution import feature_evolution
from convscope.analysis.topk import input_patch, receptive_box, receptive_boxes, top_examples
from convscope.config import TrainConfig
from convscope.errors import UserError
from convscope.experiments import register_experiment
from convscope.explain import Occlusion, create_method
from convscope.explain.deconvnet import project_units
from convscope.explain.incremental import NotIncremental
from convscope.explain.occlusion_maps import ink_region, occlusion_maps, pointing_scan, top_fraction_region
from convscope.hooks import activations, conv_layers
from convscope.result import Published, Result, provenance
from convscope.train.checkpoint import epoch_weights, load_epoch_weights
from convscope.train.loop import evaluate, resolve_device
from convscope.train.run import model_of_run, train_here

SOURCE = "Zeiler & Fergus, ECCV 2014 (docs/REFERENCE.md §5)"
TITLE = "Zeiler & Fergus: top-9 projections, occlusion, feature evolution"
Data = tuple[torch.Tensor, torch.Tensor]
CHECKED_CHANNELS = 4  # channels per layer whose explicit projection is checked against the rule gradient


@dataclass
class ZFConfig:
    """The networks studied, and the sizes of each figure's computation."""

    threads: int = 2  # pinned: CPU training is bit-identical for a seed only at one thread count
    run: str | None = None  # study this run's final model instead of training `train` (the lab passes its own)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        model="lenet5", data="mnist", epochs=8, train_subset=30000, keep_epochs=True))
    occlusion_layer: str | None = None  # default: the last conv layer
    # A second, deeper network (None: only the first). 8 conv layers, so the settle epochs have a depth to follow.
    second: TrainConfig | None = field(default_factory=lambda: TrainConfig(
        model="allconv-c", data="fashion-mnist", model_args={"width": 0.25, "final_relu": False}, epochs=6,
        batch_size=128, lr=0.003, train_subset=10000, keep_epochs=True))
    second_occlusion_layer: str | None = "features.conv7"  # its last conv layer before the class scores
    top_k: int = 9
    scan_images: int = 10000  # training images scanned for the top-k of every channel
    evolution_images: int = 3000  # training images scanned at every epoch
    evolution_channels: int = 6  # channels followed per conv layer (spread evenly)
    panel_images: int = 3  # test images shown as Fig. 7
    window: int = 7  # the grey square's side (the paper gives none: a quarter of a 28-pixel image)
    stride: int = 2
    # The square's value; None: the training set's mean pixel. The paper's images are mean-subtracted, so its grey
    # square is the mean; on MNIST a mid grey (0.5) square on the black background would add a stroke, not hide one.
    fill: float | None = None
    # A second pointing measure with the square the colour of the background (None: skip it). On a black
    # background a grey square is itself a shape: on Fashion-MNIST the largest drop then falls off the garment.
    background_fill: float | None = 0.0
    pointing_images: int = 500
    root: str | None = None  # a directory holding the user's data files (CIFAR-10/100 batches: data=cifar10)
    ink_threshold: float = 0.5
    projection_top: float = 0.1  # the alternative evidence region: the top 10 % of |projection|
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.evolution_channels < 1 or self.panel_images < 1:
            raise UserError("top_k, evolution_channels and panel_images must be at least 1.")

    @classmethod
    def lab(cls) -> ZFConfig:
        """`convscope lab`'s size: the lab's model (the lab sets `run`) for the top-9 and occlusion, and the epochs
        its run kept for the evolution (a run that kept one epoch: LeNet-5 trained here for 4 short epochs), no
        second network, smaller subsets."""
        return cls(train=replace(cls().train, epochs=4, train_subset=6000, test_subset=2000), second=None,
                   scan_images=3000, evolution_images=1000, evolution_channels=4, pointing_images=100)


@dataclass
class Study:
    """One network: its model, the data, where the model came from, and the epochs it kept."""

    tag: str
    model: nn.Module
    train: Data
    test: Data
    info: dict[str, Any]
    origin: str
    weights: dict[int, dict[str, torch.Tensor]]
    occlusion_layer: str | None
    evolution_origin: str


def _train_here(tcfg: TrainConfig, out: Path, progress: bool, root: str | None = None
                ) -> tuple[nn.Module, Data, Data, dict, dict]:
    """Train `tcfg` keeping every epoch into `out`; the model, data (from `root`, if given) and each epoch's
    weights."""
    model, train, test, info, _ = train_here(replace(tcfg, keep_epochs=True), out, root, progress)
    weights = {e: load_epoch_weights(p) for e, p in epoch_weights(out).items()}
    return model, train, test, info, weights


def _study(cfg: ZFConfig, tcfg: TrainConfig, index: int, out_dir: Path, progress: bool) -> Study:
    tag = f"{tcfg.model} on {tcfg.data}"
    run_dir = out_dir / "runs" / f"{index}-{tcfg.model}-{tcfg.data}"
    layer = cfg.occlusion_layer if index == 0 else cfg.second_occlusion_layer
    if index == 0 and cfg.run is not None:
        model, rcfg, train, test, info = model_of_run(cfg.run, str(resolve_device(tcfg.device)), cfg.root, progress)
        kept = epoch_weights(cfg.run)
        if len(kept) >= 2:
            weights, evo = {e: load_epoch_weights(p) for e, p in kept.items()}, f"the epochs run {cfg.run} kept"
        else:  # the run kept its last epoch only: follow a model trained here instead
            *_, weights = _train_here(tcfg, run_dir, progress, cfg.root)
            evo = f"{tcfg.model} trained here on {tcfg.data} for {tcfg.epochs} epochs (run {cfg.run} kept one)"
        return Study(f"{rcfg.model} on {rcfg.data}", model, train, test, info, f"the checkpoint of run "
                     f"{cfg.run}", weights, layer, evo)
    model, train, test, info, weights = _train_here(tcfg, run_dir, progress, cfg.root)
    origin = f"{tcfg.model} trained here on {tcfg.data} ({tcfg.epochs} epochs, {len(train[0])} images)"
    return Study(tag, model, train, test, info, origin, weights, layer, origin)


@register_experiment("zf", TITLE, ZFConfig)
def run(cfg: ZFConfig, out_dir: Path, progress: bool = True) -> Result:
    """Train (or load) each network and measure; `convscope.report.pages.zf` draws the figures."""
    t0 = time.perf_counter()
    configs = [cfg.train] + ([cfg.second] if cfg.second is not None else [])
    arrays: dict[str, np.ndarray] = {}
    per: list[dict[str, Any]] = []
    infos = []
    for i, tcfg in enumerate(configs):
        study = _study(cfg, tcfg, i, out_dir, progress)
        per.append(_measure(cfg, study, f"s{i}", arrays))
        infos.append(study.info)
    return _result(cfg, per, arrays, infos, t0)


def _measure(cfg: ZFConfig, st: Study, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every figure of one network into `arrays` (keys `key.…`); its metrics."""
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(st.train[0]), generator=gen)
    x_scan = st.train[0][order[:cfg.scan_images]]
    x_evo = st.train[0][order[:cfg.evolution_images]]  # a part of the scanned images
    layers = conv_layers(st.model)
    m: dict[str, Any] = {"network": st.tag, "model": st.origin, "dataset": st.info.get("dataset"),
                         "conv_layers": layers, "test_accuracy": evaluate(st.model, *st.test)["acc"],
                         "evolution_model": st.evolution_origin}
    arrays[f"{key}.classes"] = np.array(st.info.get("classes", []), dtype=str)
    m.update(top_grids(st.model, layers, x_scan, cfg.top_k, key, arrays))
    m.update(_occlusion(cfg, st, key, arrays))
    m.update(_evolution(cfg, st, layers, x_evo, key, arrays))
    return m


def _box_patch(img: torch.Tensor, proj: torch.Tensor, box: tuple[int, int, int, int],
               size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Input patch and projection inside `box`, padded with NaN to the layer's receptive field `size` on the side
    the image border cut (C, h, w)."""
    H, W = img.shape[1:]
    out = np.full((2, img.shape[0], *size), np.nan, np.float32)
    y0, y1, x0, x1 = box
    dy = (size[0] - (y1 - y0)) if (y0 == 0 and y1 < H) else (size[0] - (y1 - y0)) // 2 if y1 - y0 == H else 0
    dx = (size[1] - (x1 - x0)) if (x0 == 0 and x1 < W) else (size[1] - (x1 - x0)) // 2 if x1 - x0 == W else 0
    for j, t in enumerate((img, proj)):
        out[j, :, dy:dy + y1 - y0, dx:dx + x1 - x0] = input_patch(t, box).cpu().numpy()
    return out[0], out[1]


def _rf_size(model: nn.Module, layer: str, hw: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int]:
    """The full (uncut) receptive field of `layer`, from a unit in the middle of its output (cut to the image)."""
    y0, y1, x0, x1 = receptive_box(model, layer, shape[0] // 2, shape[1] // 2, hw)
    return y1 - y0, x1 - x0


def top_grids(model: nn.Module, layers: list[str], x: torch.Tensor, k: int, key: str,
              arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Fig. 2: the top-k images in `x` of every channel of `layers`, their input patches and projections, into
    `arrays` (keys `key.top.<layer>.…`); the scan's speed and the projection's check (the microscope uses it too)."""
    t = time.perf_counter()
    batches = (x[i:i + 500] for i in range(0, len(x), 500))
    top = top_examples(model, batches, layers, k=k)
    rate = len(x) / (time.perf_counter() - t)
    hw = tuple(x.shape[2:])
    rule = create_method("deconvnet", model)
    worst = 0.0
    how: dict[str, str] = {}
    shapes = {n: a.shape[2:] for n, a in activations(model, x[:1], layers).items()}
    for n in layers:
        tk, size = top[n], _rf_size(model, n, hw, shapes[n])
        C, k = tk.index.shape
        patch = np.empty((C, k, x.shape[1], *size), np.float32)
        proj = np.empty_like(patch)
        found = receptive_boxes(model, n, [(int(y), int(xx)) for y, xx in tk.pos.reshape(-1, 2)], hw)
        boxes = np.array(found, np.int64).reshape(C, k, 4)
        for c in range(C):  # the k images of a channel in one pass, each projecting its own top activation
            imgs = x[tk.index[c]]
            units = [(c, int(y), int(xx)) for y, xx in tk.pos[c]]
            p, how[n] = project_units(model, imgs, n, units, how.get(n, "projection"))  # equal to the rule's
            if c < CHECKED_CHANNELS and how[n] == "projection":  # against the deconvnet-rule gradient, top unit
                worst = max(worst, float((p[:1] - rule.attribute(imgs[:1], (n, *units[0]))).abs().max()))
            for j in range(len(units)):
                patch[c, j], proj[c, j] = _box_patch(imgs[j], p[j].detach(), tuple(boxes[c, j]), size)
        arrays.update({f"{key}.top.{n}.index": tk.index.numpy(), f"{key}.top.{n}.value": tk.values.numpy(),
                       f"{key}.top.{n}.pos": tk.pos.numpy(), f"{key}.top.{n}.box": boxes,
                       f"{key}.top.{n}.patch": patch, f"{key}.top.{n}.proj": proj})
    return {"topk_scan_images": len(x), "topk_scan_images_per_second": rate,
            "deconv_vs_gradient_max_abs_diff": worst, "projection_by_layer": how,
            "receptive_field": {n: list(_rf_size(model, n, hw, shapes[n])) for n in layers}}


def projection_note(how: dict[str, str]) -> str:
    """What the figures' projections are where the model is not a chain of layers (`top_grids`' `projection_by_layer`);
    empty where every layer was projected by the deconvnet itself."""
    rule = [n for n, v in how.items() if v == "rule"]
    if not rule:
        return ""
    return (f" At {', '.join(rule)} the model below is not a chain of layers (a residual add, F.relu), so the "
            "projections there are the deconvnet rule's gradient, which equals the projection on chains, and the "
            "receptive fields are found by autograd.")


def _pick_panels(model: nn.Module, test: Data, n: int, seed: int) -> torch.Tensor:
    """n test indices of different classes that the model gets right (seeded)."""
    order = torch.randperm(len(test[1]), generator=torch.Generator().manual_seed(seed + 2))[:2000]
    with torch.no_grad():
        pred = model(test[0][order].to(next(model.parameters()).device)).argmax(1).cpu()
    chosen: list[int] = []
    for i, p in zip(order.tolist(), pred.tolist(), strict=True):
        if p == int(test[1][i]) and all(int(test[1][c]) != p for c in chosen):
            chosen.append(i)
        if len(chosen) == n:
            break
    return torch.tensor(chosen, dtype=torch.long)


def _occlusion(cfg: ZFConfig, st: Study, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Fig. 7 panels, occlusion pointing over a test subset, and the fast-vs-full check."""
    x_test, y_test = st.test
    shown = _pick_panels(st.model, st.test, cfg.panel_images, cfg.seed)
    fill = cfg.fill if cfg.fill is not None else float(st.train[0][:10000].mean())
    kw = {"window": cfg.window, "stride": cfg.stride, "fill": fill, "layer": st.occlusion_layer}
    maps = occlusion_maps(st.model, x_test[shown], y_test[shown], **kw)
    arrays.update({f"{key}.panel.images": x_test[shown].numpy(), f"{key}.panel.labels": y_test[shown].numpy(),
                   f"{key}.panel.channel": maps.channel.numpy(), f"{key}.panel.feature": maps.feature.numpy(),
                   f"{key}.panel.probability": maps.probability.numpy(), f"{key}.panel.label": maps.label.numpy(),
                   f"{key}.panel.base_probability": maps.base_probability.numpy(),
                   f"{key}.panel.base_feature": maps.base_feature.numpy(),
                   f"{key}.panel.projection": maps.projection.numpy(),
                   f"{key}.panel.rows": np.array(maps.rows), f"{key}.panel.cols": np.array(maps.cols)})
    idx = torch.randperm(len(y_test), generator=torch.Generator().manual_seed(cfg.seed + 3))[:cfg.pointing_images]
    t = time.perf_counter()
    def ink(xb: torch.Tensor, _maps: Any) -> torch.Tensor:
        return ink_region(xb, cfg.ink_threshold)

    regions = {"ink": ink, "projection": lambda _xb, m: top_fraction_region(m.projection, cfg.projection_top)}
    hits = pointing_scan(st.model, x_test[idx], y_test[idx], regions, batch_size=50, **kw)
    seconds = time.perf_counter() - t  # one occlusion pass over the images (the second square's pass is extra)
    if cfg.background_fill is not None:
        hits["background"] = pointing_scan(st.model, x_test[idx], y_test[idx], {"background": ink}, batch_size=50,
                                           **{**kw, "fill": cfg.background_fill})["background"]
    out: dict[str, Any] = {"occlusion_fill": fill, "occlusion_layer": maps.layer,
                           "occlusion_positions": len(maps.rows) * len(maps.cols),
                           "occlusion_images_per_second": len(idx) / seconds, "pointing_images": len(idx)}
    for region, pointing in hits.items():
        hit, chance = pointing.hit.numpy(), pointing.chance.numpy()
        suffix = "" if region == "ink" else f"_{region}"
        arrays[f"{key}.pointing{suffix}.hit"], arrays[f"{key}.pointing{suffix}.chance"] = hit, chance
        out[f"occlusion_pointing{suffix}"] = float(hit.mean())
        out[f"occlusion_pointing{suffix}_chance"] = float(chance.mean())
    diff, speedup = _fast_vs_full(st.model, x_test[shown], y_test[shown], cfg.window, cfg.stride, fill)
    out["occlusion_max_rel_diff_vs_full"], out["occlusion_speedup_vs_full"] = diff, speedup
    return out


def _fast_vs_full(model: nn.Module, x: torch.Tensor, target: torch.Tensor, window: int, stride: int,
                  fill: float) -> tuple[float | None, float | None]:
    """max |incremental − full re-inference| / max |full| of Occlusion's probability maps, and the time of full
    re-inference over the incremental engine's (one run each, same batching); None, None for a model the engine
    cannot follow (a residual add, F.relu: occlusion re-runs it whole)."""
    kw: dict[str, Any] = {"window": window, "stride": stride, "baseline": fill, "output": "probability"}
    t0 = time.perf_counter()
    try:
        fast = Occlusion(model, fast=True, **kw).attribute(x, target)
    except NotIncremental:
        return None, None
    t1 = time.perf_counter()
    full = Occlusion(model, fast=False, **kw).attribute(x, target)
    t2 = time.perf_counter()
    return float((fast - full).abs().max() / full.abs().max().clamp_min(1e-12)), (t2 - t1) / max(t1 - t0, 1e-9)


def _evolution(cfg: ZFConfig, st: Study, layers: list[str], x: torch.Tensor, key: str,
               arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Fig. 4: the strongest image of chosen channels at every epoch, its patch and projection; settle epochs."""
    evo = feature_evolution(st.model, st.weights, x, layers, channels=cfg.evolution_channels, k=cfg.top_k)
    hw = tuple(x.shape[2:])
    shapes = {n: a.shape[2:] for n, a in activations(st.model, x[:1], layers).items()}
    models = {}
    for e in evo.epochs:  # each epoch's own model projects its own top image
        m = copy.deepcopy(st.model)
        m.load_state_dict(st.weights[e])
        models[e] = m.eval()
    arrays[f"{key}.evo.epochs"] = np.array(evo.epochs)
    how: dict[str, str] = {}
    for n in layers:
        size = _rf_size(st.model, n, hw, shapes[n])
        c_n, E = evo.index[n].shape[:2]
        patch = np.empty((c_n, E, x.shape[1], *size), np.float32)
        proj = np.empty_like(patch)
        for ei, e in enumerate(evo.epochs):  # each epoch's model projects the top image of every chosen channel
            imgs = x[evo.index[n][:, ei, 0]]
            units = [(c, int(evo.pos[n][ci, ei, 0, 0]), int(evo.pos[n][ci, ei, 0, 1]))
                     for ci, c in enumerate(evo.channels[n])]
            p, how[n] = project_units(models[e], imgs, n, units, how.get(n, "projection"))
            found = receptive_boxes(st.model, n, [(y, xx) for _, y, xx in units], hw)
            for ci, box in enumerate(found):
                patch[ci, ei], proj[ci, ei] = _box_patch(imgs[ci], p[ci].detach(), box, size)
        arrays.update({f"{key}.evo.{n}.channels": np.array(evo.channels[n]), f"{key}.evo.{n}.index": evo.index[n],
                       f"{key}.evo.{n}.value": evo.value[n], f"{key}.evo.{n}.settle": evo.settle(n),
                       f"{key}.evo.{n}.overlap": evo.overlap(n), f"{key}.evo.{n}.patch": patch,
                       f"{key}.evo.{n}.proj": proj})
    settle = {n: evo.settle_epoch(n) for n in layers}
    values = list(settle.values())
    return {"evolution_epochs": evo.epochs, "evolution_images": len(x),
            "feature_settle_epoch_by_layer": settle,
            "settle_non_decreasing_with_depth": all(a <= b for a, b in zip(values, values[1:])),
            "settle_first_vs_last_layer": [values[0], values[-1]],
            "final_top9_overlap_at_first_epoch": {n: float(evo.overlap(n)[:, 0].mean()) for n in layers}}


def _result(cfg: ZFConfig, per: list[dict[str, Any]], arrays: dict[str, np.ndarray], infos: list[dict],
            t0: float) -> Result:
    tags = [f"s{i}" for i in range(len(per))]
    by = lambda name: {f"s{i}": m[name] for i, m in enumerate(per)}  # noqa: E731
    metrics: dict[str, Any] = {
        "studies": {f"s{i}": m["network"] for i, m in enumerate(per)},
        "feature_settle_epoch_by_layer": by("feature_settle_epoch_by_layer"),
        "settle_non_decreasing_with_depth": by("settle_non_decreasing_with_depth"),
        "occlusion_pointing": by("occlusion_pointing"),
        "occlusion_pointing_chance": by("occlusion_pointing_chance"),
        "occlusion_pointing_projection": by("occlusion_pointing_projection"),
        "occlusion_pointing_projection_chance": by("occlusion_pointing_projection_chance"),
        **({"occlusion_pointing_background": by("occlusion_pointing_background"),
            "occlusion_pointing_background_chance": by("occlusion_pointing_background_chance")}
           if cfg.background_fill is not None else {}),
        "deconv_vs_gradient_max_abs_diff": max(m["deconv_vs_gradient_max_abs_diff"] for m in per),
        "topk_scan_images_per_second": per[0]["topk_scan_images_per_second"],
        "occlusion_max_rel_diff_vs_full": per[0]["occlusion_max_rel_diff_vs_full"],
        "occlusion_speedup_vs_full": by("occlusion_speedup_vs_full"),
        "occlusion_speedup_vs_captum": None,
        "test_accuracy": by("test_accuracy"),
        "per_study": {t: {k: v for k, v in m.items() if k not in ("feature_settle_epoch_by_layer",)}
                      for t, m in zip(tags, per, strict=True)},
    }
    notes = [
        f"Occlusion: a {cfg.window}×{cfg.window} square every {cfg.stride} pixels (the paper gives no size) of "
        + ("the training set's mean pixel (the paper's grey: its images are mean-subtracted)" if cfg.fill is None
           else str(cfg.fill)) + ". The strongest map is the one with the largest single activation on the "
        "unoccluded image; its activity is the sum of its rectified output, max(a, 0), over positions.",
        f"Occlusion pointing: the window position where the correct class's probability drops most counts as a hit "
        f"when its centre pixel is brighter than {cfg.ink_threshold} (the digit's or garment's ink); chance is the "
        "fraction of positions whose centre is ink, i.e. the score of a position drawn at random. The second "
        f"figure uses the top {cfg.projection_top:.0%} of |projection of the strongest map| as the region instead."
        + ("" if cfg.background_fill is None else
           f" The third repeats the first with a square of {cfg.background_fill:g}, the background's colour: a grey "
           "square on a black background draws a shape of its own, and on Fashion-MNIST, where the silhouette is "
           "most of the evidence, the largest drop with grey falls beside the garment rather than on it."),
        "Settle epoch of a channel: the first epoch e from which its strongest training image is the same at every "
        f"later epoch; a layer's value is the median over {cfg.evolution_channels} channels spread evenly over it, "
        f"scanned over {cfg.evolution_images} training images. Epoch 1 is the end of the first epoch.",
    ]
    for m in per:
        if projection_note(m["projection_by_layer"]):
            notes.append(f"{m['network']}:" + projection_note(m["projection_by_layer"]))
    notes.append("Occlusion runs on the incremental engine (explain.incremental) where it can follow the model (a "
                 "chain of layers; elsewhere it re-runs the model whole, and the two figures below are empty); "
                 "occlusion_max_rel_diff_vs_full compares it with full re-inference on the panel images. "
                 "occlusion_speedup_vs_captum is measured by "
                 "benchmarks/occlusion_speed.py on AlexNet, VGG-16 and LeNet-5 (Captum is a dev extra, not a "
                 "dependency of the experiment).")
    published = {
        "feature_settle_epoch_by_layer": Published(
            "lower layers settle within a few epochs, upper layers only after many: the settle epoch does not "
            "decrease with depth", SOURCE + ", §4.1 and Fig. 4",
            "ImageNet, 70 epochs; qualitative: the ordering is compared, not the epochs"),
        "occlusion_pointing": Published(
            "the correct class's probability drops sharply when the object is occluded", SOURCE + ", §4.2 and Fig. 7",
            "three ImageNet images; the pointing fraction and its chance baseline are this project's measure"),
        "deconv_vs_gradient_max_abs_diff": Published(
            0.0, "deconvnet projection = deconvnet-rule gradient on conv/ReLU/max-pool networks (docs/REFERENCE.md "
            "§5, §9)", "float rounding only", kind="expected (theory)", tolerance=1e-5),
    }
    return Result(name="zf", title=TITLE, metrics=metrics, published=published,
                  provenance=provenance(cfg, [cfg.train.seed] + ([cfg.second.seed] if cfg.second else []), infos[0],
                                        t0, data_by_study=infos[1:]),
                  arrays=arrays, notes=notes)


__all__ = ["ZFConfig", "run"]
