"""Feature visualisation of a whole layer: all channels in one batched optimisation against one channel at a time.

Workloads (seeded random weights, eval, float32, the model's own input size): LeNet-5 `features.conv2` (16
channels, 1×28×28) and AlexNet (10 classes, 64-unit classifier) `features.conv2` (192 channels) at 3×64×64. Both
sides call `optvis.render_channels` with the same settings: the channel-mean objective, a Fourier-space image
(decorrelated colours for RGB), Lucid's transformations scaled to the input size, Adam at lr 0.05, the same
number of steps and the same seed, so image c starts from the same seed and sees the same transformations on
both sides. The only differences: the batched side optimises one batch of C images (one forward and backward
pass per step, one Adam); the loop side runs C optimisations of one image each, one after the other (C passes per
step, C Adams). Quality is the objective each image reached (its channel's mean activation) and the largest
difference between the two sides' images, which should be rounding only. An untimed two-step run warms up first.
Goal (issue 12): the batched side at least 5× faster on LeNet-5's conv2.

Each side runs `--repeats` times, interleaved, and its fastest run counts: on a CPU shared with other work a
single run can be several times slower than the next. `--threads 1` avoids PyTorch's helper threads spinning on
such a CPU.

Usage: python benchmarks/featurevis_speed.py [--quick] [--steps N] [--repeats N] [--threads N]
[--models lenet5,alexnet].
Prints one JSON object (progress on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from convscope.models import create_model
from convscope.optvis import Rendering, render_channels

GOAL = 5.0  # speedup on LeNet-5's conv2


def workloads(quick: bool) -> dict[str, tuple[Callable[[], torch.nn.Module], str, tuple[int, int, int], int | None]]:
    """name -> (model builder, layer, input shape, how many channels to render (None: all))."""

    def seeded(name: str, **kw: object) -> Callable[[], torch.nn.Module]:
        def build() -> torch.nn.Module:
            torch.manual_seed(0)
            return create_model(name, **kw).eval()
        return build

    return {
        "lenet5": (seeded("lenet5"), "features.conv2", (1, 28, 28), 4 if quick else None),
        "alexnet": (seeded("alexnet", num_classes=10, hidden=64), "features.conv2", (3, 64, 64), 4 if quick else 32),
    }


def summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(values.mean()), 4), "min": round(float(values.min()), 4),
            "max": round(float(values.max()), 4)}


def run(model: torch.nn.Module, layer: str, shape: tuple[int, int, int], channels: list[int], steps: int,
        repeats: int) -> dict:
    """Time both sides `repeats` times, interleaved (a shared CPU's load changes under a long run); keep the fastest."""

    def batched() -> Rendering:
        return render_channels(model, layer, channels, input_shape=shape, steps=steps)

    def one_at_a_time() -> list[Rendering]:
        return [render_channels(model, layer, [c], input_shape=shape, steps=steps) for c in channels]

    render_channels(model, layer, channels[:2], input_shape=shape, steps=2)  # warm-up, untimed
    times: dict[str, list[float]] = {"batched": [], "one_at_a_time": []}
    for _ in range(repeats):
        for side, fn in (("batched", batched), ("one_at_a_time", one_at_a_time)):
            t0 = time.perf_counter()
            out = fn()
            times[side].append(round(time.perf_counter() - t0, 3))
            if side == "batched":
                batch = out
            else:
                alone = out
        print(f"  batched {times['batched'][-1]:.2f}s, one at a time {times['one_at_a_time'][-1]:.2f}s",
              file=sys.stderr)
    loop_values = np.concatenate([r.values for r in alone])
    loop_images = torch.cat([r.images for r in alone])
    best = {side: min(t) for side, t in times.items()}
    return {
        "layer": layer, "input_shape": list(shape), "channels": len(channels), "steps": steps,
        "batched_s": best["batched"], "one_at_a_time_s": best["one_at_a_time"],
        "speedup": round(best["one_at_a_time"] / best["batched"], 2), "runs_s": times,
        "objective_reached_batched": summary(batch.values), "objective_reached_one_at_a_time": summary(loop_values),
        "objective_at_start": summary(batch.start_values),
        "max_abs_objective_diff": float(np.abs(batch.values - loop_values).max()),
        "max_abs_image_diff": float((batch.images - loop_images).abs().max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 channels per layer, 8 steps")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps per side (default 128, quick 8)")
    parser.add_argument("--models", default="lenet5,alexnet", help="comma-separated workloads to run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side, interleaved; the fastest counts")
    parser.add_argument("--threads", type=int, default=0, help="PyTorch intra-op threads (0: leave the default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (8 if args.quick else 128)
    results = {}
    for name, (build, layer, shape, n) in workloads(args.quick).items():
        if name not in args.models.split(","):
            continue
        print(f"{name} {layer}:", file=sys.stderr)
        model = build()
        with torch.no_grad():
            width = model.get_submodule(layer).out_channels
        results[name] = run(model, layer, shape, list(range(width if n is None else n)), steps, args.repeats)
        print(json.dumps({name: results[name]}), file=sys.stderr)
    met = "lenet5" in results and results["lenet5"]["speedup"] >= GOAL
    print(json.dumps({
        "benchmark": "featurevis_speed", "device": "cpu", "threads": torch.get_num_threads(),
        "torch": torch.__version__, "quick": args.quick, "weights": "seeded random (torch.manual_seed(0))",
        "same_on_both_sides": "render_channels: channel-mean objective, Fourier image (decorrelated colours for "
                              "RGB), Lucid's transforms scaled to the input, Adam lr 0.05, same steps and seed",
        "differences": "batched: one batch of C images, one forward/backward and one Adam per step; one at a time: "
                       "C optimisations of one image each, run one after the other",
        "measure": f"fastest of {args.repeats} interleaved wall-clock runs per side; speedup = one-at-a-time time / "
                   "batched time",
        "results": results, "goal": {"speedup_min": GOAL, "models": ["lenet5"]}, "met": bool(met),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
