"""A small synthetic run directory for report tests: random arrays of the right shapes.

`make_run_dir(path)` writes every file of the run-directory layout (`convscope/io.py`) for a
two-conv-layer network, three epochs of metrics and one experiment result with published values
and a figure; `parts` picks a subset, to test what the atlas does when files are absent.

Example:
    >>> root = make_run_dir(tmp_path / "run", parts=("run", "layers"))
    >>> render_atlas(root)
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.image import imsave

from convscope.io import append_jsonl, atomic_write_bytes, save_npz, write_json
from convscope.result import Published, Result

PARTS = ("run", "metrics", "summary", "layers", "experiment")
CONV_LAYERS = ("features.conv1", "features.conv2")
CLASSES = ["zero", "one", "two"]


def make_run_dir(root: str | Path, parts: tuple[str, ...] = PARTS, channels: int = 3, seed: int = 0) -> Path:
    """Write a synthetic run directory at `root` holding `parts` (see PARTS); returns `root`."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n, size = 4, 16
    # conv1: channels -> 6, 5x5, 16 -> 12; pool -> 6; conv2: 6 -> 8, 3x3, 6 -> 4
    shapes = {"features.conv1": ((6, channels, 5, 5), (6, 12, 12)), "features.conv2": ((8, 6, 3, 3), (8, 4, 4))}

    if "run" in parts:
        write_json(root / "run.json", {
            "kind": "train",
            "model": "tinynet",
            "dataset": "synthetic",
            "config": {"epochs": 3, "batch_size": 32, "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
            "provenance": {
                "seed": seed,
                "versions": {"python": "3.12.0", "torch": "2.13.0", "numpy": "2.1.0", "convscope": "0.1.0"},
                "data_checksum": "sha256:" + "0123456789abcdef" * 4,
                "wall_seconds": 83.4,
            },
            "final": {"test_acc": 0.8125, "test_loss": 0.5521},
        })
    if "metrics" in parts:
        for epoch in (1, 2, 3):
            append_jsonl(root / "metrics.jsonl", {
                "epoch": epoch, "train_loss": 1.2 / epoch, "train_acc": 0.5 + 0.12 * epoch,
                "test_loss": 1.3 / epoch + 0.1, "test_acc": 0.45 + 0.12 * epoch, "lr": 0.05, "seconds": 27.8,
            })
    if "summary" in parts:
        rows = [
            _row("features.conv1", "Conv2d", [6, 12, 12], 6 * channels * 25 + 6, 5, 1, True),
            _row("features.relu1", "ReLU", [6, 12, 12], 0, 5, 1, False),
            _row("features.pool1", "MaxPool2d", [6, 6, 6], 0, 6, 2, False),
            _row("features.conv2", "Conv2d", [8, 4, 4], 8 * 6 * 9 + 8, 10, 2, True),
            _row("classifier.fc", "Linear", [3], 8 * 16 * 3 + 3, None, None, True),
        ]
        total = sum(r["params"] for r in rows)
        write_json(root / "summary.json", {
            "model": "tinynet", "input_shape": [channels, size, size], "total_params": total,
            "trainable_params": total, "depth": 3, "rows": rows,
        })
    if "layers" in parts:
        arrays = {
            "images": rng.random((n, channels, size, size), dtype=np.float32),
            "labels": np.array([0, 1, 2, 1]),
            "preds": np.array([0, 2, 2, 1]),
        }
        for name, (wshape, ashape) in shapes.items():
            arrays[f"{name}.weight"] = rng.normal(size=wshape).astype(np.float32)
            arrays[f"{name}.act"] = rng.normal(size=(n, *ashape)).astype(np.float32)
        save_npz(root / "layers.npz", **arrays)
        write_json(root / "layers.json", {"conv_layers": list(CONV_LAYERS), "classes": CLASSES})
    if "experiment" in parts:
        make_experiment(root / "experiments" / "recos", rng)
    return root


def make_experiment(out: Path, rng: np.random.Generator | None = None) -> Path:
    """Save one experiment Result with every kind of metric, published values and a figure."""
    rng = rng or np.random.default_rng(0)
    fig = rng.random((24, 32, 3))
    buf = io.BytesIO()
    imsave(buf, fig, format="png")
    atomic_write_bytes(out / "figures" / "response.png", buf.getvalue())
    result = Result(
        name="recos",
        title="RECOS: filters as cluster centroids",
        metrics={
            "test_acc": 0.9904,
            "epochs": 1,
            "kind": "mnist",
            "converged": True,
            "per_class_acc": [0.99, 0.98, 0.97],
            "loss_by_step": np.linspace(2.0, 0.1, 40).tolist(),
            "confusion": [[50, 1, 0], [2, 47, 1], [0, 3, 46]],
            "large_matrix": rng.normal(size=(12, 12)).tolist(),
            "timing": {"forward_ms": 1.25, "backward_ms": 2.5},
            "mu_by_layer": {"relu net": {"features.conv1": -0.61851, "features.conv2": -0.15},
                            "crelu net": {"features.conv1": -0.55469, "features.conv3": [0.5, 0.25]}},
        },
        published={
            "test_acc": Published(value=0.9904, source="Kuo (2016), Table 2", note="mean over 5 seeds"),
            "epochs": Published(value=1, source="docs/REFERENCE.md"),
            "wall_seconds": Published(value="0.76 s", source="a laptop GTX 1660 Ti", note="not measured here"),
        },
        provenance={"config": {"epochs": 1}, "seeds": [0, 1], "versions": {"torch": "2.13.0"},
                    "data_checksum": "sha256:" + "ab" * 32, "wall_seconds": 12.5},
        figures={"Response of each filter to its cluster": "figures/response.png"},
        arrays={"centroids": rng.normal(size=(6, 25)).astype(np.float32)},
        notes=["Synthetic numbers for tests.", "A <b>tag</b> that must be escaped."],
    )
    result.save(out)
    return out


def _row(name, type_, out_shape, params, rf, jump, counted):
    return {"name": name, "type": type_, "output_shape": out_shape, "params": params,
            "connections": params * (out_shape[-1] * out_shape[-2] if len(out_shape) == 3 else 1),
            "rf": rf, "jump": jump, "counted": counted}
