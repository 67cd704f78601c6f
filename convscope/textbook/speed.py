"""How fast the textbook engine is: its conv layer against PyTorch's, and the BLAS thread count.

`conv_speed_vs_torch` times one forward plus backward pass of `layers.Conv2d` against
`torch.nn.functional.conv2d` with autograd (forward, then backward of the output's sum) on the same
shapes, by default LeNet-5's two conv layers at batch 64 (conv1 1→6 on 28×28 with padding 2; conv2
6→16 on 14×14), and reports the ratio of median times (engine / torch; below 1 means faster).
Both sides compute every gradient (weights, bias and input); the figures without the input gradient
(what a network's first layer needs) are reported beside. The benchmark and `reproduce textbook` both
call this one function.

NumPy's matrix products run on OpenBLAS, whose worker threads spin while they wait; on a small machine
shared with other work that makes small products tens of times slower. `blas_threads(n)` sets its
thread count for a block (through the library's own `openblas_set_num_threads`, as threadpoolctl does),
and the timings run both libraries with the same number of threads.
"""

from __future__ import annotations

import ctypes
import glob
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from convscope.textbook.layers import Conv2d

# (name, in channels, out channels, input size, padding): LeNet-5's two conv layers, 5×5 kernels.
LENET_CONVS: tuple[tuple[str, int, int, int, int], ...] = (("conv1", 1, 6, 28, 2), ("conv2", 6, 16, 14, 0))


def _openblas() -> tuple[Any, Any] | None:
    """(set, get) thread-count functions of the OpenBLAS that numpy uses, or None if not found."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)  # already loaded by numpy: this returns the same handle
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "_64_", ""):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    getter.restype = ctypes.c_int
                    return setter, getter
    return None


@contextmanager
def blas_threads(n: int) -> Iterator[bool]:
    """Run the block with OpenBLAS using `n` threads; yields False (and changes nothing) if it cannot.

    Example:
        >>> with blas_threads(1):
        ...     y = np.ones((500, 500)) @ np.ones((500, 500))
    """
    fns = _openblas()
    if fns is None:
        yield False
        return
    setter, getter = fns
    before = getter()
    setter(n)
    try:
        yield True
    finally:
        setter(before)


def _median_ms(fn: Any, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """Median (CPU, wall) milliseconds of `fn()` over `repeats` calls."""
    for _ in range(warmup):
        fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return 1000 * float(np.median(cpu)), 1000 * float(np.median(wall))


def conv_speed_vs_torch(batch: int = 64, repeats: int = 30, threads: int = 1, seed: int = 0,
                        convs: tuple[tuple[str, int, int, int, int], ...] = LENET_CONVS) -> dict[str, Any]:
    """Median milliseconds of a conv layer's forward + backward, engine vs PyTorch, per layer and overall.

    Times are CPU time of this process (`time.process_time`), which a busy shared machine does not
    inflate the way it inflates wall time (a descheduled process's clock keeps running); wall-clock
    medians are reported beside them (`*_wall_ms`, `wall_ratio`). With `threads` > 1, CPU time also
    counts idle helper threads spinning, so compare the wall ratios then.

    Args:
        batch: images per pass.
        repeats: timed repetitions (after 3 untimed ones); the median is reported.
        threads: threads for both PyTorch (`torch.set_num_threads`) and OpenBLAS; restored afterwards.
        seed: for the random inputs.
        convs: (name, in, out, size, padding) of the layers, 5×5 kernels.

    Returns:
        {"layers": {name: {"numpy_ms", "torch_ms", "ratio", "numpy_wall_ms", "torch_wall_ms", "wall_ratio",
        and the same six with the suffix "_no_input_grad"}}, "ratio": total engine / total torch CPU time
        over the layers, "wall_ratio": the same for wall time, "worst_ratio": the largest per-layer ratio,
        "batch", "threads", "repeats", "blas_threads_set": whether OpenBLAS's thread count could be set}.
        Everything runs in float32.

    Example:
        >>> speed = conv_speed_vs_torch(repeats=10)
        >>> speed["ratio"], speed["layers"]["conv2"]["numpy_ms"]
    """
    import torch

    rng = np.random.default_rng(seed)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    layers: dict[str, dict[str, float]] = {}
    try:
        with blas_threads(threads) as blas_set:
            for name, c_in, c_out, size, pad in convs:
                x = rng.standard_normal((batch, c_in, size, size)).astype(np.float32)
                layers[name] = _time_layer(Conv2d(c_in, c_out, 5, padding=pad, rng=rng), x, pad, repeats)
    finally:
        torch.set_num_threads(torch_threads)

    def total(key: str) -> float:
        return sum(r[f"numpy_{key}"] for r in layers.values()) / sum(r[f"torch_{key}"] for r in layers.values())

    return {"layers": layers, "ratio": total("ms"), "wall_ratio": total("wall_ms"),
            "worst_ratio": max(r["ratio"] for r in layers.values()), "batch": batch, "threads": threads,
            "repeats": repeats, "blas_threads_set": blas_set}


def _time_layer(conv: Conv2d, x: np.ndarray, pad: int, repeats: int) -> dict[str, float]:
    """One layer's row of `conv_speed_vs_torch`: both engines, with and without the input gradient."""
    import torch
    import torch.nn.functional as F

    dy = np.ones_like(conv.forward(x))  # ∂(Σ Y)/∂Y: what autograd's backward of the sum starts from
    xt = torch.from_numpy(x)
    wt = torch.from_numpy(conv.params["weight"]).requires_grad_()
    bt = torch.from_numpy(conv.params["bias"]).requires_grad_()

    def engine() -> None:
        conv.forward(x)
        conv.backward(dy)

    def reference() -> None:
        F.conv2d(xt, wt, bt, padding=pad).sum().backward()
        xt.grad = wt.grad = bt.grad = None

    row: dict[str, float] = {}
    for suffix, input_grad in (("", True), ("_no_input_grad", False)):
        conv.needs_input_grad = input_grad
        xt.requires_grad_(input_grad)
        row[f"numpy_ms{suffix}"], row[f"numpy_wall_ms{suffix}"] = _median_ms(engine, repeats)
        row[f"torch_ms{suffix}"], row[f"torch_wall_ms{suffix}"] = _median_ms(reference, repeats)
        row[f"ratio{suffix}"] = row[f"numpy_ms{suffix}"] / row[f"torch_ms{suffix}"]
        row[f"wall_ratio{suffix}"] = row[f"numpy_wall_ms{suffix}"] / row[f"torch_wall_ms{suffix}"]
    return row
