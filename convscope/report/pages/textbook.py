"""The atlas page of `reproduce textbook`: the convolution chapter (Qiu, *Neural Networks and Deep Learning*,
ch. 5; docs/REFERENCE.md §1) in NumPy, drawn from the saved Result.

`convscope/experiments/textbook.py` checks the chapter's formulas, times the NumPy conv layer and
trains the NumPy LeNet-5 beside a PyTorch twin; it saves numbers and arrays only. The drawing
functions here take those arrays:

- `conv_modes_1d`: a worked 1-D example of narrow, wide and same convolution: the zero-padded input,
  the kernel's first and last placements, and the outputs, with the lengths (M − K + 2P)/S + 1.
- `numpy_vs_torch_curves`: training loss by step and test accuracy by epoch of the NumPy LeNet-5 and
  its PyTorch twin, with LeCun et al.'s published error as a reference line.
- `conv_speed_bars`: milliseconds of one conv layer's forward + backward, engine vs PyTorch.
- `filters_side_by_side`: conv1's learned 5×5 filters in both nets (same start, same batches).

Like figures.py: arrays in, PNG bytes out, `Figure` objects only (no pyplot), nothing computed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Rectangle
from matplotlib.ticker import PercentFormatter

from convscope.report.figures import DIVERGING, mosaic, png_bytes, symmetric_scale
from convscope.report.pages import ExperimentPage, Figure, register_page
from convscope.result import Result

_INPUT, _PAD, _OUT, _KERNEL = "#dbe8f5", "#f2f2f2", "#fde4c8", "#c0392b"
MODES = ("narrow", "wide", "same")


def _cells(ax: Axes, y: float, x0: float, values: Sequence[float], color: str | Sequence[str],
           fmt: str = "{:g}") -> None:
    """A row of unit squares at height `y` starting at `x0`, each labelled with its value."""
    colors = [color] * len(values) if isinstance(color, str) else list(color)
    for i, (v, c) in enumerate(zip(values, colors)):
        ax.add_patch(Rectangle((x0 + i, y), 1, 1, facecolor=c, edgecolor="0.35", linewidth=0.8))
        ax.text(x0 + i + 0.5, y + 0.5, fmt.format(v), ha="center", va="center", fontsize=8)


def conv_modes_1d(x: np.ndarray, w: np.ndarray, outputs: Mapping[str, np.ndarray],
                  paddings: Mapping[str, Sequence[int]]) -> bytes:
    """The worked example: for each mode, the padded input (zeros grey), the kernel's first and last
    placements (red brackets), and the output row under the positions it is computed at.

    Args:
        x: the input signal (M,).
        w: the kernel (K,), drawn flipped where it slides (convolution).
        outputs: mode → the output of `conv1d(x, w, mode=mode)`.
        paddings: mode → zeros (before, after) that the mode adds.
    """
    M, K = len(x), len(w)
    widest = max(M + sum(p) for p in paddings.values())
    fig = MplFigure(figsize=(1.2 + 0.42 * widest, 0.9 + 1.25 * len(outputs)), layout="constrained")
    ax = fig.add_subplot()
    rows = list(outputs.items())
    for r, (mode, out) in enumerate(rows):
        before, after = paddings[mode]
        top = 3.1 * (len(rows) - 1 - r) + 1.4
        padded = np.concatenate([np.zeros(before), x, np.zeros(after)])
        colors = [_PAD] * before + [_INPUT] * M + [_PAD] * after
        x0 = -before  # the input's first sample sits at 0 in every row
        _cells(ax, top, x0, padded, colors)
        for start in sorted({0, len(out) - 1}):  # first and last placement of the kernel
            ax.add_patch(Rectangle((x0 + start, top - 0.08), K, 1.16, fill=False, edgecolor=_KERNEL, linewidth=1.6))
        _cells(ax, top - 1.35, x0 + (K - 1) / 2, out, _OUT)  # each output under its window's centre
        P = "P = 0" if before == after == 0 else (f"P = {before}" if before == after else f"P = {before}/{after}")
        ax.text(x0 - 0.6, top + 0.5, f"{mode}\n{P}", ha="right", va="center", fontsize=9, fontweight="bold")
        ax.text(x0 - 0.6, top - 0.85, f"length {len(out)}", ha="right", va="center", fontsize=8, color="0.3")
    flipped = ", ".join(f"{v:g}" for v in w[::-1])
    ax.set_title(f"convolution of x (M = {M}) with w (K = {K}), stride 1: the kernel slides flipped ({flipped});\n"
                 "zeros added P before and after (grey); output length M − K + 2P + 1", fontsize=9)
    lo = -max(p[0] for p in paddings.values()) - 3.2
    ax.set_xlim(lo, max(M + p[1] for p in paddings.values()) + 0.3)
    ax.set_ylim(-0.2, 3.1 * len(rows) - 0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return png_bytes(fig)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average over `window` steps (shorter at the start)."""
    c = np.cumsum(np.insert(np.asarray(values, float), 0, 0.0))
    n = np.arange(1, len(values) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def numpy_vs_torch_curves(step_loss: Mapping[str, np.ndarray], test_acc: Mapping[str, Sequence[float]],
                          reference_acc: float | None = None, reference_label: str = "published") -> bytes:
    """Left: training loss by step (moving average); right: test accuracy by epoch; one line per engine."""
    fig = MplFigure(figsize=(9.6, 3.4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for name, losses in step_loss.items():
        losses = np.asarray(losses)
        window = max(len(losses) // 100, 1)
        ax_loss.plot(np.arange(1, len(losses) + 1), _smooth(losses, window), linewidth=1.2,
                     label=f"{name} (mean of {window} steps)" if window > 1 else name)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    for name, acc in test_acc.items():
        acc = np.asarray(acc)
        ax_acc.plot(np.arange(1, len(acc) + 1), acc, "-o", markersize=4, linewidth=1.4, label=name)
    if reference_acc is not None:
        ax_acc.axhline(reference_acc, color="0.3", linestyle="--", linewidth=1.2, label=reference_label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy")
    ax_acc.set_xticks(np.arange(1, max(len(a) for a in test_acc.values()) + 1))
    ax_acc.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    return png_bytes(fig)


def conv_speed_bars(layers: Mapping[str, Mapping[str, float]], goal: float | None = None) -> bytes:
    """Grouped bars: milliseconds of forward + backward per layer, NumPy engine vs PyTorch, with the ratio.

    `layers` maps a layer name to {"numpy_ms", "torch_ms", "ratio"} (as `conv_speed_vs_torch` returns).
    """
    names = list(layers)
    fig = MplFigure(figsize=(6.0, 3.2), layout="constrained")
    ax = fig.add_subplot()
    pos = np.arange(len(names))
    numpy_ms = [layers[n]["numpy_ms"] for n in names]
    torch_ms = [layers[n]["torch_ms"] for n in names]
    ax.bar(pos - 0.2, numpy_ms, 0.4, label="NumPy engine", color=colormaps["tab10"](0))
    ax.bar(pos + 0.2, torch_ms, 0.4, label="PyTorch", color=colormaps["tab10"](1))
    for p, n, a in zip(pos, names, numpy_ms):
        ax.text(p - 0.2, a, f"{layers[n]['ratio']:.2f}×", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(pos, names)
    ax.set_ylabel("ms per forward + backward")
    title = "conv layer, batch 64 (label: engine ÷ PyTorch)"
    ax.set_title(title + (f"; goal ≤ {goal:g}×" if goal else ""), fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(frameon=False, fontsize=8)
    return png_bytes(fig)


def filters_side_by_side(weights: Mapping[str, np.ndarray]) -> bytes:
    """One row per net of its conv1 filters (out, 1, K, K), each filter scaled to its own peak |value|."""
    fig = MplFigure(figsize=(6.4, 0.5 + 1.1 * len(weights)), layout="constrained")
    axes = fig.subplots(len(weights), 1, squeeze=False)[:, 0]
    cmap = colormaps[DIVERGING].with_extremes(bad="white")  # NaN gutters between filters
    for ax, (name, w) in zip(axes, weights.items()):
        planes = symmetric_scale(np.asarray(w, np.float32)[:, 0])  # (out, K, K) in [−1, 1]
        ax.imshow(mosaic(planes, len(planes)), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return png_bytes(fig)


# ---------------------------------------------------------------- the page


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@register_page("textbook")
class TextbookPage(ExperimentPage):
    labels = {
        "output_size_max_abs_diff": "conv output length vs (M − K + 2P)/S + 1: max |diff|",
        "conv_equals_corr_rot180_max_diff": "convolution vs cross-correlation with rot180(W): max |diff|",
        "wide_conv_commutes_max_diff": "x ~⊗ w vs w ~⊗ x (wide convolution): max |diff|",
        "lenet_grad_max_abs_diff_vs_autograd": "NumPy LeNet-5 gradients vs torch.autograd: max |diff|",
        "pool_routing_max_abs_diff": "pooling backward vs the chapter's routing: max |diff|",
        "conv1_params": "conv1 parameters",
        "conv2_params": "conv2 parameters",
        "weight_layers": "counted layers (conv + FC)",
        "numpy_lenet_test_error_pct": "NumPy LeNet-5 test error (%)",
        "numpy_minus_torch_acc": "NumPy − PyTorch twin test accuracy",
        "params": "LeNet-5 parameters",
    }
    percent = frozenset({"numpy_minus_torch_acc"})

    def _within(self, r: Result, key: str) -> bool | None:
        """Whether metric `key` lies within its stated tolerance (None: no number or no tolerance)."""
        value, pub = r.metrics.get(key), r.published.get(key)
        if not _number(value) or pub is None or pub.tolerance is None or not _number(pub.value):
            return None
        return abs(float(value) - float(pub.value)) <= pub.tolerance

    def summary(self, r: Result) -> str:
        return " ".join(s for s in (self._checks(r), self._training(r), self._speed(r)) if s)

    def _checks(self, r: Result) -> str:
        m, parts = r.metrics, []
        if _number(m.get("lenet_grad_max_abs_diff_vs_autograd")):
            g = m["lenet_grad_max_abs_diff_vs_autograd"]
            ok = self._within(r, "lenet_grad_max_abs_diff_vs_autograd")
            verb = {True: "match", False: "do not match", None: "are compared with"}[ok]
            parts.append(f"the NumPy engine's LeNet-5 gradients {verb} torch.autograd (max |diff| {g:.1e})")
        checks = m.get("output_size_checks")
        if isinstance(checks, dict) and _number(m.get("output_size_max_abs_diff")):
            ok = self._within(r, "output_size_max_abs_diff")
            how = ("follow" if ok else "do not all follow") if ok is not None else "are compared with"
            parts.append(f"the convolution lengths of all {len(checks)} worked cases {how} (M − K + 2P)/S + 1")
        text = " and ".join(parts)
        return text[:1].upper() + text[1:] + "." if text else ""

    def _training(self, r: Result) -> str:
        m = r.metrics
        if not all(_number(m.get(k)) for k in ("numpy_lenet_test_acc", "torch_lenet_test_acc",
                                               "numpy_lenet_test_error_pct")):
            return ""
        err, epochs = m["numpy_lenet_test_error_pct"], m.get("epochs")
        pub = r.published.get("numpy_lenet_test_error_pct")
        ref = float(pub.value) if pub is not None and _number(pub.value) else 0.95
        side = "below" if err < ref else "above" if err > ref else "equal to"
        diff = 100 * (m["numpy_lenet_test_acc"] - m["torch_lenet_test_acc"])
        over = f" for {epochs} epoch{'s' if epochs != 1 else ''}" if _number(epochs) else ""
        return (f"Trained from the same start on the same batches{over}, "
                f"the NumPy LeNet-5 reaches {100 * m['numpy_lenet_test_acc']:.2f} % test accuracy and its PyTorch "
                f"twin {100 * m['torch_lenet_test_acc']:.2f} % ({diff:+.2f} points); the NumPy net's "
                f"{err:.2f} % test error is {side} the {ref:g} % LeCun et al. report for the classic network "
                "after 20 passes.")

    def _speed(self, r: Result) -> str:
        m = r.metrics
        if not _number(m.get("conv_fwd_bwd_ratio_vs_torch")):
            return ""
        text = f"Its conv layer's forward + backward takes {m['conv_fwd_bwd_ratio_vs_torch']:.2f}× PyTorch's CPU time"
        if _number(m.get("conv_speed_goal")) and isinstance(m.get("conv_speed_goal_met"), bool):
            text += (f" ({'within' if m['conv_speed_goal_met'] else 'outside'} the project's goal of "
                     f"≤ {m['conv_speed_goal']:g}× for every layer)")
        if _number(m.get("numpy_over_torch_train_time")):
            text += f", and training takes {m['numpy_over_torch_train_time']:.2f}× the twin's wall time"
        return text + "."

    def figures(self, r: Result) -> list[Figure]:
        drawn = (self._conv_modes(r), self._curves(r), self._speed_figure(r), self._filters(r))
        return [f for f in drawn if f is not None]

    def _conv_modes(self, r: Result) -> Figure | None:
        paddings = r.metrics.get("conv1d_paddings")
        keys = ("conv1d_x", "conv1d_w", *(f"conv1d_{mode}" for mode in MODES))
        if not isinstance(paddings, dict) or not all(k in r.arrays for k in keys):
            return None
        a = r.arrays
        png = conv_modes_1d(a["conv1d_x"], a["conv1d_w"], {mode: a[f"conv1d_{mode}"] for mode in MODES}, paddings)
        return Figure("Worked example: narrow, wide and same convolution of a 1-D signal, computed by the NumPy "
                      "engine. Each red bracket is a placement of the flipped kernel; each output sits under its "
                      "window's centre. The lengths follow (M − K + 2P)/S + 1: M − K + 1, M + K − 1 and M.", png)

    def _curves(self, r: Result) -> Figure | None:
        m = r.metrics
        if not ({"numpy_step_loss", "torch_step_loss"} <= set(r.arrays)
                and m.get("numpy_lenet_test_acc_by_epoch") and m.get("torch_lenet_test_acc_by_epoch")):
            return None
        pub = r.published.get("numpy_lenet_test_error_pct")
        ref = 1 - float(pub.value) / 100 if pub is not None and _number(pub.value) else None
        png = numpy_vs_torch_curves({"NumPy": r.arrays["numpy_step_loss"], "PyTorch": r.arrays["torch_step_loss"]},
                                    {"NumPy": m["numpy_lenet_test_acc_by_epoch"],
                                     "PyTorch": m["torch_lenet_test_acc_by_epoch"]},
                                    ref, f"LeCun et al. 1998: {pub.value:g} % error" if ref is not None else "")
        return Figure("The NumPy LeNet-5 and its PyTorch twin, same start, same batches, same recipe. Left: "
                      "training loss by step; right: test accuracy after each epoch, the dashed line the classic "
                      "network's published accuracy. The two lines should lie on top of each other at first and "
                      "drift apart only by float32 rounding.", png)

    def _speed_figure(self, r: Result) -> Figure | None:
        ms, ratio = r.metrics.get("conv_fwd_bwd_ms"), r.metrics.get("conv_fwd_bwd_ratio_by_layer")
        if not isinstance(ms, dict) or not isinstance(ratio, dict) or not ratio:
            return None
        layers = {name: {"numpy_ms": ms.get(f"{name} numpy", 0.0), "torch_ms": ms.get(f"{name} torch", 0.0),
                         "ratio": ratio[name]} for name in ratio}
        goal = r.metrics.get("conv_speed_goal")
        return Figure("Median CPU time of one conv layer's forward + backward (all gradients) at batch 64, NumPy "
                      "engine beside PyTorch, for LeNet-5's conv1 and conv2; the label over each NumPy bar is its "
                      "time over PyTorch's, to hold against the goal in the title.",
                      conv_speed_bars(layers, goal if _number(goal) else None))

    def _filters(self, r: Result) -> Figure | None:
        if not {"numpy_conv1_weight", "torch_conv1_weight"} <= set(r.arrays):
            return None
        png = filters_side_by_side({"NumPy": r.arrays["numpy_conv1_weight"], "PyTorch": r.arrays["torch_conv1_weight"]})
        return Figure("conv1's six 5×5 filters after training, NumPy (top) and PyTorch (bottom), each scaled to its "
                      "own largest |weight| (red positive, blue negative). From the same start on the same batches "
                      "the two rows should look alike filter by filter.", png)


__all__ = ["TextbookPage", "conv_modes_1d", "conv_speed_bars", "filters_side_by_side", "numpy_vs_torch_curves"]
