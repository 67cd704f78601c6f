"""Every explanation method against its Captum 0.9 counterpart, in one run, on the same inputs.

Workloads (issue 10): 64 MNIST test images through LeNet-5, and 4 images at 224×224 through VGG-16 (random
weights: timing does not depend on them). Both sides run in eval mode, float32, with the same thread count,
on the same tensors and targets, and must return the same maps (the run checks they agree to 1e-4 and says
so). Captum runs at its best batching: each of its batching options below is timed and the fastest kept
(`internal_batch_size` for integrated gradients, `nt_samples_batch_size` for SmoothGrad/VarGrad,
`perturbations_per_eval` for occlusion); convscope runs at its defaults, with the same option where it has one.

Settings: integrated gradients 32 steps (Gauss–Legendre, Captum's default rule), SmoothGrad/VarGrad 16 noisy
copies, occlusion windows of 4×4 stride 2 on MNIST and 56×56 stride 28 on VGG-16 (the paper leaves the
size open; this keeps the run within minutes on a 2-core CPU). Differences left in: Captum's SmoothGrad
wraps Captum's saliency and ours wraps ours; for SmoothGrad the noise is drawn by each library from the same
seed. Time: the best of `--repeats` wall-clock runs of each method on LeNet-5 and of `--vgg-repeats` on VGG-16
(default 1: one VGG-16 side takes up to minutes on a 2-core CPU), and of more runs, up to 5, while a side's
runs have taken under 10 s; both sides follow the same rule.
Goal: no method slower than Captum (ratio = convscope time / Captum time ≤ 1).

Usage: python benchmarks/explain_speed.py [--quick] [--models lenet5,vgg16] [--repeats N] [--vgg-repeats N].
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import captum
import captum.attr as ca
import torch

from convscope.data import load_dataset
from convscope.explain import create_method
from convscope.models import create_model

STEPS, SAMPLES = 32, 16


def best_time(fn: Callable[[], torch.Tensor], repeats: int, budget: float = 10.0,
              most: int = 5) -> tuple[float, torch.Tensor]:
    """The best of at least `repeats` runs, and of more (up to `most`) while they have taken under `budget`
    seconds: one-second methods get several runs, the same rule on both sides."""
    best, out, spent, runs = float("inf"), None, 0.0, 0
    while runs < repeats or (spent < budget and runs < most):
        t0 = time.perf_counter()
        out = fn()
        took = time.perf_counter() - t0
        best, spent, runs = min(best, took), spent + took, runs + 1
    return best, out


def captum_best(options: dict[str, Callable[[], torch.Tensor]], repeats: int) -> tuple[float, torch.Tensor, str]:
    """Time each of Captum's batching options and keep the fastest; the maps returned are the first option's
    (the one with our settings: batching changes the order in which SmoothGrad's noise is drawn)."""
    results = {name: best_time(fn, repeats) for name, fn in options.items()}
    name = min(results, key=lambda k: results[k][0])
    return results[name][0], next(iter(results.values()))[1], name


def workloads(quick: bool) -> dict[str, tuple[torch.nn.Module, torch.Tensor, str, tuple[int, int]]]:
    torch.manual_seed(0)
    test = load_dataset("mnist", "test").tensors()[0][: 16 if quick else 64]
    lenet = create_model("lenet5").eval()
    size = 112 if quick else 224
    vgg = create_model("vgg16").eval()
    images = torch.rand(2 if quick else 4, 3, size, size)
    return {"lenet5_mnist64": (lenet, test, "features.conv2", (4, 2)),
            f"vgg16_{size}x{len(images)}": (vgg, images, "features.conv5_3", (size // 4, size // 8))}


def run_model(model: torch.nn.Module, x: torch.Tensor, layer: str, occ: tuple[int, int],
              repeats: int, only: set[str] | None = None) -> dict[str, dict]:
    with torch.no_grad():
        t = model(x).argmax(1)
    B, C = len(x), x.shape[1]
    L = model.get_submodule(layer)
    w, s = occ

    def noise(kind: str, batch: int | None) -> Callable[[], torch.Tensor]:
        def fn() -> torch.Tensor:
            torch.manual_seed(0)
            return ca.NoiseTunnel(ca.Saliency(model)).attribute(x, target=t, nt_samples=SAMPLES, stdevs=0.1,
                                                                nt_type=kind, nt_samples_batch_size=batch, abs=False)
        return fn

    def ours(name: str, **setup) -> Callable[[], torch.Tensor]:
        method = create_method(name, model, layer=layer, **setup)
        options = {"steps": STEPS} if name == "integrated_gradients" else {}
        return lambda: method.attribute(x, t, **options)

    ig_batches = {f"internal_batch_size={b}": b for b in (None, B * STEPS // 4, B * STEPS // 16) if b != 0}
    cases: dict[str, tuple[Callable, dict[str, Callable]]] = {
        "saliency": (ours("saliency"), {"default": lambda: ca.Saliency(model).attribute(x, target=t, abs=False)}),
        "input_x_gradient": (ours("input_x_gradient"),
                             {"default": lambda: ca.InputXGradient(model).attribute(x, target=t)}),
        "integrated_gradients": (ours("integrated_gradients"), {
            k: (lambda b=b: ca.IntegratedGradients(model).attribute(x, target=t, n_steps=STEPS, internal_batch_size=b))
            for k, b in ig_batches.items()}),
        "smoothgrad": (ours("smoothgrad", n=SAMPLES, sigma=0.1, absolute_sigma=True),
                       {f"nt_samples_batch_size={b}": noise("smoothgrad", b) for b in (None, SAMPLES // 4)}),
        "vargrad": (ours("vargrad", n=SAMPLES, sigma=0.1, absolute_sigma=True),
                    {f"nt_samples_batch_size={b}": noise("vargrad", b) for b in (None, SAMPLES // 4)}),
        "guided_backprop": (ours("guided_backprop"),
                            {"default": lambda: ca.GuidedBackprop(model).attribute(x, target=t)}),
        "deconvnet": (ours("deconvnet"), {"default": lambda: ca.Deconvolution(model).attribute(x, target=t)}),
        "gradcam": (ours("gradcam"), {"default": lambda: ca.LayerAttribution.interpolate(
            ca.LayerGradCam(model, L).attribute(x, target=t, relu_attributions=True), tuple(x.shape[2:]), "bilinear")}),
        "guided_gradcam": (ours("guided_gradcam"),
                           {"default": lambda: ca.GuidedGradCam(model, L).attribute(x, target=t)}),
        "occlusion": (ours("occlusion", window=w, stride=s, perturbations_per_eval=max(1, 256 // B)), {
            f"perturbations_per_eval={p}": (lambda p=p: ca.Occlusion(model).attribute(
                x, target=t, sliding_window_shapes=(C, w, w), strides=(C, s, s), perturbations_per_eval=p))
            for p in (1, max(1, 64 // B), max(1, 256 // B))}),
    }
    out = {}
    for name, (mine, theirs) in cases.items():
        if only and name not in only:
            continue
        t_ours, a_ours = best_time(mine, repeats)
        t_theirs, a_theirs, option = captum_best(theirs, repeats)
        scale = float(a_theirs.abs().max()) or 1.0
        out[name] = {"convscope_s": round(t_ours, 4), "captum_s": round(t_theirs, 4), "captum_option": option,
                     "ratio": round(t_ours / t_theirs, 3),
                     "max_rel_diff": float((a_ours - a_theirs).abs().max()) / scale}
        print(f"{name}: ours {t_ours:.3f}s captum {t_theirs:.3f}s ({option})", file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 MNIST images and 2 VGG images at 112×112")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per side on LeNet-5 (best kept)")
    parser.add_argument("--methods", default="", help="comma-separated methods to run (default: all)")
    parser.add_argument("--models", default="lenet5,vgg16", help="comma-separated workloads to run")
    parser.add_argument("--vgg-repeats", type=int, default=1, help="timed runs per side on VGG-16 (best kept)")
    args = parser.parse_args()
    results = {}
    for name, (model, x, layer, occ) in workloads(args.quick).items():
        if name.split("_")[0] not in args.models.split(","):
            continue
        results[name] = run_model(model, x, layer, occ, args.vgg_repeats if name.startswith("vgg") else args.repeats,
                                  set(filter(None, args.methods.split(","))))
    ratios = [r["ratio"] for per in results.values() for r in per.values()]
    agree = all(r["max_rel_diff"] < 1e-4 for per in results.values() for r in per.values())
    print(json.dumps({
        "benchmark": "explain_speed", "device": "cpu", "threads": torch.get_num_threads(),
        "torch": torch.__version__, "captum": captum.__version__,
        "settings": {"ig_steps": STEPS, "ig_rule": "gausslegendre", "noise_samples": SAMPLES, "noise_std": 0.1},
        "repeats": {"lenet5": args.repeats, "vgg16": args.vgg_repeats},
        "measure": "best of repeats (more, up to 5, while under 10 s), wall seconds;"
                   " ratio = convscope / Captum at Captum's fastest batching option",
        "results": results, "max_ratio": max(ratios), "maps_agree_1e-4": agree,
        "goal": {"max_ratio": 1.0}, "met": bool(max(ratios) <= 1.0 and agree),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
