"""The atlas page of `reproduce crelu`: paired filters, the Table 1 variants, invariance, reconstruction.

Shang, Sohn, Almeida and Lee, "Understanding and Improving Convolutional Neural Networks via Concatenated
Rectified Linear Units", ICML 2016 (docs/REFERENCE.md §4). Compute and render apart (docs/DESIGN.md): the
drawing functions take the arrays and metrics `convscope.experiments.crelu` saves and return PNG bytes;
`CReLUPage` picks them out of a saved Result, writes the summary from its numbers, and captions each figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure as MplFigure

from convscope.report.figures import png_bytes
from convscope.report.pages import ExperimentPage, Figure, Row, register_page
from convscope.result import Published, Result, mean_std

LEARNED, RANDOM = "#1f77b4", "#9aa0a6"


def pairing_histograms(title: str, mu: Mapping[str, np.ndarray], mu_random: Mapping[str, np.ndarray]) -> bytes:
    """One panel per layer, four to a row: the histogram of μ for the learned filters against random ones."""
    names = list(mu)
    cols = min(max(len(names), 1), 4)
    rows = -(-max(len(names), 1) // cols)  # ceil
    fig = MplFigure(figsize=(2.6 * cols + 0.6, 0.4 + 2.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=False)).ravel()
    for ax in axes[len(names):]:
        ax.axis("off")
    bins = np.linspace(-1, 1, 41)
    for ax, name in zip(axes, names, strict=False):
        ax.hist(mu_random[name], bins=bins, color=RANDOM, alpha=0.7, label="random")
        ax.hist(mu[name], bins=bins, color=LEARNED, alpha=0.75, label="learned")
        ax.axvline(float(np.mean(mu[name])), color=LEARNED, linestyle="--", linewidth=1)
        ax.axvline(float(np.mean(mu_random[name])), color="0.35", linestyle="--", linewidth=1)
        ax.set_title(name.split(".")[-1], fontsize=9)
        ax.set_xlabel("μ (cosine with pairing filter)", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return png_bytes(fig)


def variant_errors(variants: Sequence[str], mean: np.ndarray, std: np.ndarray, params: Sequence[int],
                   published: Mapping[str, float], dataset: str, published_label: str = "CIFAR-10") -> bytes:
    """Test error of each variant (bars, ±1 std) beside the paper's errors (ticks, right axis).

    Args:
        variants: one name per bar; mean, std: their test errors (%); params: their parameter counts.
        published: variant -> the paper's error (%) on `published_label` (Table 1); missing ones are not drawn.
        dataset: what the bars were measured on.
    """
    fig = MplFigure(figsize=(7.2, 3.4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(variants))
    ax.bar(x, mean, 0.55, yerr=std, color=LEARNED, capsize=3, label=f"measured on {dataset}")
    for i, (m, p) in enumerate(zip(mean, params, strict=True)):
        ax.text(i, m + (std[i] if len(std) else 0) + 0.2, f"{m:.2f} %\n{p / 1e6:.2f}M", ha="center",
                va="bottom", fontsize=7)
    ax.set_xticks(x, variants, fontsize=8)
    ax.set_ylabel(f"test error on {dataset} (%)")
    ax.set_ylim(0, max(float(np.max(mean + std)) * 1.35, 1))
    twin = ax.twinx()
    pub = np.array([published.get(v, np.nan) for v in variants], float)
    twin.plot(x, pub, "k_", markersize=22, markeredgewidth=2,
              label=f"published, {published_label} (Shang et al. Table 1)")
    twin.set_ylabel(f"published {published_label} error (%)", fontsize=8)
    twin.set_ylim(0, max(np.nanmax(pub) * 1.35, 1) if np.isfinite(pub).any() else 1)
    lines = ax.get_legend_handles_labels()
    tl = twin.get_legend_handles_labels()
    ax.legend(lines[0] + tl[0], lines[1] + tl[1], fontsize=7, frameon=False, loc="upper left")
    return png_bytes(fig)


def invariance_curves(layers: Sequence[str], scores: Mapping[str, Mapping[str, Sequence[float]]]) -> bytes:
    """One panel per transformation: the invariance score by layer, one line per model."""
    transforms = sorted({t for per_model in scores.values() for t in per_model})
    fig = MplFigure(figsize=(3.3 * max(len(transforms), 1), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(transforms), 1)))
    x = np.arange(1, len(layers) + 1)
    for ax, t in zip(axes, transforms, strict=False):
        for model, per_model in scores.items():
            ax.plot(x, per_model[t], "-o", markersize=3, linewidth=1.4, label=model)
        ax.set_title(t, fontsize=9)
        ax.set_xticks(x, [name.split(".")[-1] for name in layers], fontsize=7, rotation=45)
        ax.set_ylabel("invariance score L/G", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, frameon=False)
    return png_bytes(fig)


def reconstructions(rows: Mapping[str, np.ndarray]) -> bytes:
    """A grid of images: one row per caption (the input, then each reconstruction of it).

    Args:
        rows: caption -> (n, H, W) grey or (n, C, H, W) images in [0, 1]; three channels are drawn in
            colour, any other count shows the first channel in grey. Values are clipped to [0, 1].
    """
    names = list(rows)
    n = len(next(iter(rows.values())))
    fig = MplFigure(figsize=(1.1 * n + 2.2, 1.15 * len(names)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(names), n))
    for r, name in enumerate(names):
        for c in range(n):
            ax = axes[r, c]
            img = np.asarray(rows[name][c], float)
            if img.ndim == 3:  # (C, H, W)
                img = img.transpose(1, 2, 0) if img.shape[0] == 3 else img[0]
            ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    return png_bytes(fig)


def recon_ratios(learned: Mapping[str, float], random: Mapping[str, float],
                 published: Mapping[str, tuple[float, float]]) -> bytes:
    """‖x − x′‖/‖x‖ for each layer and pooling (groups), learned against random filters (bars).

    Args:
        learned, random: `conv2_pool`-style key -> ratio.
        published: key -> (learned, random) figures of the paper, drawn as black ticks.
    """
    keys = list(learned)
    x = np.arange(len(keys))
    fig = MplFigure(figsize=(6.4, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for j, (values, colour, label) in enumerate(((learned, LEARNED, "learned filters"),
                                                  (random, RANDOM, "random filters"))):
        pos = x + (j - 0.5) * 0.38
        heights = [values.get(k, np.nan) for k in keys]
        ax.bar(pos, heights, 0.36, color=colour, label=label)
        for p, v in zip(pos, heights, strict=True):
            if np.isfinite(v):  # inside the bar, clear of the published tick above it
                ax.text(p, v - 0.02, f"{v:.2f}", ha="center", va="top", fontsize=7, color="white")
    legend = "published (Shang et al. §2.2, CReLU half)"
    for i, k in enumerate(keys):
        for j, v in enumerate(published.get(k, ())):
            pos = i + (j - 0.5) * 0.38
            ax.plot([pos - 0.18, pos + 0.18], [v, v], color="black", lw=2, label=legend)
            legend = None  # one legend entry for all the ticks
    ax.set_xticks(x, [k.replace("_nopool", "\nno pooling").replace("_pool", "\nmax pooled") for k in keys],
                  fontsize=8)
    ax.set_ylabel("‖x − x′‖ / ‖x‖ (lower: more recovered)", fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=7, frameon=False)
    return png_bytes(fig)


VARIANT_LABELS = {"baseline": "baseline (ReLU)", "double": "double (ReLU, 2× width)", "avr": "AVR (|x|)",
                  "crelu": "CReLU", "crelu-half": "CReLU (half)"}
RECON_WHAT = {"conv2_pool": "conv2's input, max pooled", "conv2_nopool": "conv2's input, no pooling",
              "conv5_pool": "conv5's input, max pooled", "conv5_nopool": "conv5's input, no pooling"}


@register_page("crelu")
class CReLUPage(ExperimentPage):
    labels = {
        **{f"test_error_pct.{v}": f"test error (%), {label}" for v, label in VARIANT_LABELS.items()},
        **{f"recon_ratio_{f}.{k}": f"‖x − x′‖/‖x‖, {what}, {f} filters"
           for k, what in RECON_WHAT.items() for f in ("learned", "random")},
        "params_by_variant": "parameters by variant",
        "mu_mean_by_layer": "pairing μ by layer",
        "invariance_by_layer": "invariance by layer",
    }

    def row(self, r: Result, key: str, pub: Published) -> Row:
        """As the base row; a reconstruction measured on another network than the paper's says which."""
        row = super().row(r, key, pub)
        if isinstance(r.metrics.get(key), dict):  # a table or curves: the cell says where to look, briefly
            row.measured = _in_brief(r, key)
        variant = r.metrics.get("recon_variant")
        if key.startswith("recon_ratio_") and variant and variant != "crelu-half":
            row.figure += f" — measured on {VARIANT_LABELS.get(variant, variant)}, not the paper's CReLU (half)"
        return row

    def summary(self, r: Result) -> str:
        return " ".join(s for s in (_variants_sentence(r), _pairing_sentence(r), _recon_sentence(r)) if s)

    def figures(self, r: Result) -> list[Figure]:
        drawn = [*self._pairing(r), self._variants(r), self._invariance(r), self._recon_ratios(r),
                 self._pictures(r)]
        return [f for f in drawn if f is not None]

    def _pairing(self, r: Result) -> list[Figure]:
        out = []
        for i, name in enumerate(r.metrics.get("pairing_models") or []):
            mu = {k.removeprefix(f"mu.{i}."): v for k, v in r.arrays.items() if k.startswith(f"mu.{i}.")}
            rand = {k: r.arrays.get(f"mu_random.{i}.{k}") for k in mu}
            if not mu or any(v is None for v in rand.values()):
                continue
            png = pairing_histograms(f"{name}: μ of learned filters (blue) vs random (grey)", mu, rand)
            out.append(Figure(f"Pairing statistic μ (the cosine of each filter with its most opposed partner) by "
                              f"layer, {name}, against Gaussian filters of the same shape; dashed lines are the "
                              "means. Where the blue mass sits left of the grey, filters come in pairs of opposite "
                              "phase; the paper finds this in the first layers of ReLU networks and not with CReLU.",
                              png))
        return out

    def _variants(self, r: Result) -> Figure | None:
        stats = {v: _errors(r, v) for v in r.metrics.get("variants") or []}
        stats = {v: s for v, s in stats.items() if s is not None}
        params = r.metrics.get("params_by_variant") or {}
        if not stats or not all(v in params for v in stats):
            return None
        published = {v: float(p.value) for v in stats if (p := r.published.get(f"test_error_pct.{v}")) is not None
                     and _number(p.value)}
        dataset = str(r.metrics.get("dataset", "?"))
        column = "CIFAR-100" if dataset == "cifar100" else "CIFAR-10"
        png = variant_errors(list(stats), np.array([m for m, _ in stats.values()]),
                             np.array([s for _, s in stats.values()]), [int(params[v]) for v in stats], published,
                             dataset, column)
        return Figure(f"Test error of each variant on {dataset} (bars: mean ± std over seeds, with parameters), "
                      f"beside the paper's {column} errors (black ticks, right axis). The data set and width differ "
                      "from the paper's unless the ticks say otherwise: compare the ordering, whether CReLU beats "
                      "the ReLU baseline and whether CReLU (half) does so with fewer parameters.", png)

    def _invariance(self, r: Result) -> Figure | None:
        layers, scores = r.metrics.get("invariance_layers"), r.metrics.get("invariance_by_layer")
        if not isinstance(layers, list) or not isinstance(scores, dict) or not scores:
            return None
        return Figure("Invariance score (local over global firing rate, L/G) of the units after each activation, "
                      "one panel per transformation, one line per network; higher means the unit keeps firing "
                      "when its input is flipped, rotated or shifted. The paper finds CReLU's scores rise with "
                      "depth like ReLU's.", invariance_curves(layers, scores))

    def _recon_ratios(self, r: Result) -> Figure | None:
        learned = {k: float(r.metrics[f"recon_ratio_learned.{k}"]) for k in RECON_WHAT
                   if _number(r.metrics.get(f"recon_ratio_learned.{k}"))}
        random = {k: float(r.metrics[f"recon_ratio_random.{k}"]) for k in RECON_WHAT
                  if _number(r.metrics.get(f"recon_ratio_random.{k}"))}
        if not learned:
            return None
        published = {}
        for k in learned:
            pair = [r.published.get(f"recon_ratio_{f}.{k}") for f in ("learned", "random")]
            if all(p is not None and _number(p.value) for p in pair):
                published[k] = (float(pair[0].value), float(pair[1].value))
        variant = VARIANT_LABELS.get(r.metrics.get("recon_variant"), r.metrics.get("recon_variant"))
        return Figure(f"Relative error of reconstructing conv2's and conv5's inputs from their CReLU features, on "
                      f"the {variant} network: learned (blue) against random filters of the same norms (grey), "
                      "with and without the max pooling after the layer; black ticks are the paper's figures for "
                      "CReLU (half) with pooling. Lower is better: learned filters should keep more of the input "
                      "than random ones, and without pooling far more.",
                      recon_ratios(learned, random, published))

    def _pictures(self, r: Result) -> Figure | None:
        pictures, rows = r.arrays.get("recon_pictures"), r.metrics.get("recon_rows")
        if pictures is None or not isinstance(rows, list) or len(rows) != len(pictures) or pictures.ndim not in (4, 5):
            return None
        return Figure("Test images (top row) reconstructed from conv1's CReLU features: learned against random "
                      "filters, without and with a 3×3/2 max pooling. CReLU keeps both phases of every filter, "
                      "so the features hold most of the image; what pooling (only the switch positions are "
                      "known) and random filters lose shows as blur and missing detail.",
                      reconstructions(dict(zip(rows, pictures, strict=True))))


def _variants_sentence(r: Result) -> str:
    base, crelu = _errors(r, "baseline"), _errors(r, "crelu") or _errors(r, "crelu-half")
    if base is None or crelu is None:
        return ""
    which = "CReLU" if _errors(r, "crelu") else "CReLU (half)"
    n = len(r.by_seed.get("test_error_pct.baseline") or [0])
    pub_base, pub_crelu = (9.17, 8.43) if which == "CReLU" else (9.17, 8.37)
    lower = crelu[0] < base[0]
    return (f"On {r.metrics.get('dataset', '?')} at {r.metrics.get('width', '?')} of the paper's width, {which} "
            f"reaches {_pm(crelu)} % test error against {_pm(base)} % for the ReLU baseline ({n} seed"
            f"{'s' if n > 1 else ''}): {'lower, as' if lower else 'not lower, unlike'} in the paper's Table 1 "
            f"({pub_crelu} against {pub_base} % on CIFAR-10).")


def _pairing_sentence(r: Result) -> str:
    mu, rand = r.metrics.get("mu_mean_by_layer") or {}, r.metrics.get("mu_mean_random_by_layer") or {}
    learned, random = (mu.get("allconv-c baseline") or {}).get("features.conv1"), \
        (rand.get("allconv-c baseline") or {}).get("features.conv1")
    if not (_number(learned) and _number(random)):
        return ""
    crelu = next(((name, m["features.conv1"], rand[name]["features.conv1"]) for name, m in mu.items()
                  if "crelu" in name and "features.conv1" in m and "features.conv1" in rand.get(name, {})), None)
    paired = "pair with an opposite-phase partner more than" if learned < random - 0.02 else "pair no more than"
    out = (f"The ReLU network's conv1 filters {paired} random ones do (mean μ {_signed(learned)} against "
           f"{_signed(random)} for random filters)")
    if crelu is not None:
        out += f"; with CReLU the mean μ is {_signed(crelu[1])} against {_signed(crelu[2])}"
    return out + "."


def _recon_sentence(r: Result) -> str:
    learned, random = r.metrics.get("recon_ratio_learned.conv2_pool"), r.metrics.get("recon_ratio_random.conv2_pool")
    if not (_number(learned) and _number(random)):
        return ""
    variant = VARIANT_LABELS.get(r.metrics.get("recon_variant"), r.metrics.get("recon_variant"))
    better = ("learned filters keep more of it than random ones, as in the paper" if learned < random else
              "learned filters keep no more of it than random ones, unlike the paper")
    return (f"Through CReLU and max pooling, conv2's input comes back with relative error {learned:.2f} from the "
            f"{variant} network's learned filters against {random:.2f} from random ones: {better} (0.92 against "
            "0.99 for CReLU (half) on CIFAR).")


def _in_brief(r: Result, key: str) -> str:
    """What the headline's measured cell says for a metric that is a table (see the figures for the rest)."""
    value = r.metrics[key]
    if key == "params_by_variant":
        return ", ".join(f"{v} {int(n):,}" for v, n in value.items() if _number(n))
    if key == "mu_mean_by_layer":
        rand = r.metrics.get("mu_mean_random_by_layer") or {}
        parts = [f"{name} conv1 {_signed(layers['features.conv1'])} (random "
                 f"{_signed(rand[name]['features.conv1'])})" for name, layers in value.items()
                 if "features.conv1" in layers and "features.conv1" in rand.get(name, {})]
        return "; ".join(parts) + "; every layer in the figures and metrics"
    return "see the figures"


def _signed(x: float) -> str:
    return f"{x:.2f}".replace("-", "−")


def _errors(r: Result, variant: str) -> tuple[float, float] | None:
    """Mean and std (%) of a variant's test error over seeds; None when it was not trained."""
    seeds = [v for v in r.by_seed.get(f"test_error_pct.{variant}") or [] if _number(v)]
    if seeds:
        return mean_std(seeds)
    value = r.metrics.get(f"test_error_pct.{variant}")
    return (float(value), 0.0) if _number(value) else None


def _pm(stat: tuple[float, float]) -> str:
    return f"{stat[0]:.1f} ± {stat[1]:.1f}" if stat[1] else f"{stat[0]:.1f}"


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and bool(np.isfinite(x))


__all__ = ["CReLUPage", "invariance_curves", "pairing_histograms", "recon_ratios", "reconstructions",
           "variant_errors"]
