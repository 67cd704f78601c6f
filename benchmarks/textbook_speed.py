"""The textbook engine's conv layer against PyTorch's: forward + backward on LeNet-5's shapes.

`convscope.textbook.Conv2d` (im2col forward; ∂f/∂W = ∂f/∂Y ⊗ X, ∂f/∂X = rot180(W) ~⊗ ∂f/∂Y) runs
forward and backward on batch 64 of conv1 (1→6, 28×28, padding 2) and conv2 (6→16, 14×14); PyTorch
runs `F.conv2d` forward and autograd's backward of the output's sum on the same arrays. Both compute
every gradient (weights, bias, input); the figures without the input gradient (a first layer) are
reported beside. Median over repeats of the CPU time of this process, so the other work on a shared
machine does not count; wall-clock ratios come along. Both libraries run with the same thread count
(OpenBLAS for NumPy, intra-op threads for PyTorch); with more than one, CPU time also counts helper
threads spinning while they wait, so the goal is then judged on wall time. The measure is
`conv_speed_vs_torch`, the same function `reproduce textbook` reports. Goal (issue 3): every layer,
with and without the input gradient, within 3× of PyTorch.

Usage: python benchmarks/textbook_speed.py [THREADS [REPEATS]]   (default 1 thread, 50 repeats).
Prints one JSON object.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from convscope.textbook import conv_speed_vs_torch

GOAL = 3.0


def main() -> int:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    speed = conv_speed_vs_torch(batch=64, repeats=repeats, threads=threads)
    # CPU time counts the spinning of idle helper threads too, so with several threads judge by wall time.
    prefix = "" if threads == 1 else "wall_"
    ratios = [r[prefix + key] for r in speed["layers"].values() for key in ("ratio", "ratio_no_input_grad")]
    out = {
        "benchmark": "textbook_speed", "device": "cpu", "torch": torch.__version__, "numpy": np.__version__,
        "measure": "median CPU ms (and wall ms) of one forward + backward, float32, batch 64; "
                   "ratio = NumPy / PyTorch",
        **speed,
        "goal": {"max_ratio": GOAL, "per": "layer, with and without the input gradient",
                 "judged_on": "CPU time" if threads == 1 else "wall time"},
        "met": bool(max(ratios) <= GOAL),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
