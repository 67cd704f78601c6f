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
seed. Time: a machine's load drifts by more than the differences measured here, so the two sides are timed in
interleaved rounds (`--rounds`, `--vgg-rounds`; the order alternates each round) and compared round by round;
millisecond calls are timed in loops of equal length on both sides. A method is "slower" only when the lower
quartile of its paired ratios (convscope / Captum) is above 1, "faster" when the upper quartile is below 1.
Goal: no method slower than Captum.

Usage: python benchmarks/explain_speed.py [--quick] [--models lenet5,vgg16] [--rounds N] [--vgg-rounds N].
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import captum
import captum.attr as ca
import torch

from convscope.data import load_dataset
from convscope.explain import create_method
from convscope.models import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import calls_per_sample, sample  # noqa: E402  (benchmarks/_timing.py)

STEPS, SAMPLES = 32, 16


def fastest_option(options: dict[str, Callable[[], torch.Tensor]]) -> tuple[str, torch.Tensor]:
    """Captum's fastest batching option, from one warm timed call of each; and the maps of the first option
    (the one with our settings: batching changes the order in which SmoothGrad's noise is drawn)."""
    times, first = {}, None
    for name, fn in options.items():
        out = fn()  # warm-up
        first = out if first is None else first
        times[name] = sample(fn, calls_per_sample(fn))
    return min(times, key=times.__getitem__), first


def paired_rounds(ours: Callable[[], torch.Tensor], theirs: Callable[[], torch.Tensor],
                  rounds: int) -> dict[str, float | list[float] | str]:
    """Time both sides in `rounds` interleaved rounds (the order alternates each round), so drift in the
    machine's load falls on both alike; the verdict compares the paired ratios' quartiles with 1."""
    calls = max(calls_per_sample(ours), calls_per_sample(theirs))
    mine, captum_t = [], []
    for r in range(rounds):
        pair = (ours, theirs) if r % 2 == 0 else (theirs, ours)
        a, b = sample(pair[0], calls), sample(pair[1], calls)
        mine.append(a if r % 2 == 0 else b)
        captum_t.append(b if r % 2 == 0 else a)
    ratios = sorted(m / c for m, c in zip(mine, captum_t, strict=True))
    q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    verdict = "faster" if q[2] < 1 else "slower" if q[0] > 1 else "within noise"
    return {"convscope_s": round(statistics.median(mine), 5), "captum_s": round(statistics.median(captum_t), 5),
            "ratio": round(q[1], 3), "ratio_quartiles": [round(q[0], 3), round(q[2], 3)],
            "rounds": rounds, "calls_per_sample": calls, "verdict": verdict}


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
              rounds: int, only: set[str] | None = None) -> dict[str, dict]:
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
        a_ours = mine()  # warm-up, and the maps compared
        option, a_theirs = fastest_option(theirs)
        row = paired_rounds(mine, theirs[option], rounds)
        scale = float(a_theirs.abs().max()) or 1.0
        out[name] = {**row, "captum_option": option, "max_rel_diff": float((a_ours - a_theirs).abs().max()) / scale}
        print(f"{name}: ratio {row['ratio']} {row['ratio_quartiles']} ({row['verdict']}; captum {option})",
              file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 MNIST images and 2 VGG images at 112×112")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timed rounds per method on LeNet-5")
    parser.add_argument("--methods", default="", help="comma-separated methods to run (default: all)")
    parser.add_argument("--models", default="lenet5,vgg16", help="comma-separated workloads to run")
    parser.add_argument("--vgg-rounds", type=int, default=3, help="interleaved timed rounds per method on VGG-16")
    args = parser.parse_args()
    if min(args.rounds, args.vgg_rounds) < 1:
        parser.error("--rounds and --vgg-rounds must be at least 1")
    results = {}
    for name, (model, x, layer, occ) in workloads(args.quick).items():
        if name.split("_")[0] not in args.models.split(","):
            continue
        results[name] = run_model(model, x, layer, occ, args.vgg_rounds if name.startswith("vgg") else args.rounds,
                                  set(filter(None, args.methods.split(","))))
    rows = [r for per in results.values() for r in per.values()]
    agree = all(r["max_rel_diff"] < 1e-4 for r in rows)
    slower = [f"{w}/{m}" for w, per in results.items() for m, r in per.items() if r["verdict"] == "slower"]
    print(json.dumps({
        "benchmark": "explain_speed", "device": "cpu", "threads": torch.get_num_threads(),
        "torch": torch.__version__, "captum": captum.__version__,
        "settings": {"ig_steps": STEPS, "ig_rule": "gausslegendre", "noise_samples": SAMPLES, "noise_std": 0.1},
        "rounds": {"lenet5": args.rounds, "vgg16": args.vgg_rounds},
        "measure": "per method, interleaved rounds (order alternating), each sample the mean of calls_per_sample"
                   " back-to-back calls; ratio = median of the paired convscope/Captum ratios, with quartiles;"
                   " Captum at its fastest batching option (one timed warm sample per option)",
        "verdict_rule": "slower when the lower quartile of the paired ratios is above 1, faster when the upper"
                        " quartile is below 1, otherwise within noise",
        "results": results, "max_ratio": max(r["ratio"] for r in rows), "slower": slower,
        "maps_agree_1e-4": agree, "goal": "no method slower than Captum", "met": bool(not slower and agree),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
