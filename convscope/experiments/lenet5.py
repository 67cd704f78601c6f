"""`reproduce lenet5`: LeNet-5 on MNIST over several seeds, beside LeCun et al. (1998).

LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document recognition",
Proc. IEEE 86(11), 1998, report 0.95 % test error for LeNet-5 after 20 passes without distortions
(REFERENCE.md §2). We train the modern variant (ReLU, max pooling, 28×28 input with padding 2) with
the fast recipe of `TrainConfig` and report mean and standard deviation over the seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from convscope.config import TrainConfig, to_dict
from convscope.experiments import register_experiment
from convscope.experiments.result import Published, Result, versions
from convscope.io import atomic_write_bytes
from convscope.report.figures import curves_by_seed
from convscope.train.loop import fit, resolve_device
from convscope.train.run import build_model, load_data


@dataclass
class LeNet5Config:
    """Seeds and the training recipe shared by every seed."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train: TrainConfig = field(default_factory=lambda: TrainConfig(model="lenet5", data="mnist"))

    @classmethod
    def lab(cls) -> LeNet5Config:
        """`convscope lab`'s size: the full recipe over two seeds (about 26 s; the three of the protocol take 40 s)."""
        return cls(seeds=[0, 1])


@register_experiment("lenet5", "LeNet-5 on MNIST", LeNet5Config)
def run(cfg: LeNet5Config, out_dir: Path, progress: bool = True) -> Result:
    t0 = time.perf_counter()
    (x_train, y_train), (x_test, y_test), data_info = load_data(cfg.train, progress=progress)
    accs, seconds, params, curves = [], [], 0, {}
    for seed in cfg.seeds:
        tcfg = replace(cfg.train, seed=seed)
        model = build_model(tcfg, x_train.shape[1], len(data_info["classes"]), resolve_device(tcfg.device))
        params = sum(p.numel() for p in model.parameters())
        fitted = fit(model, (x_train, y_train), (x_test, y_test), tcfg, progress=progress)
        accs.append(fitted.final["test_acc"])
        seconds.append(fitted.train_seconds)
        curves[seed] = [row["test_acc"] for row in fitted.history]

    acc = np.array(accs)
    curve_arr = np.array([curves[s] for s in cfg.seeds])
    figure = "test_acc_by_epoch.png"
    atomic_write_bytes(out_dir / figure, curves_by_seed(curve_arr, cfg.seeds, "test accuracy", reference=1 - 0.0095,
                                                        reference_label="LeCun et al. 1998: 0.95 % error"))
    return Result(
        name="lenet5",
        title="LeNet-5 on MNIST",
        metrics={
            "test_acc": float(acc.mean()),
            "test_acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "test_error_pct": float(100 * (1 - acc.mean())),
            "params": int(params),
            "train_seconds": float(np.mean(seconds)),
            "test_acc_by_seed": [float(a) for a in acc],
            "epochs": cfg.train.epochs,
        },
        published={
            "test_error_pct": Published(0.95, "LeCun et al., Proc. IEEE 1998 (REFERENCE.md §2)",
                                        "classic LeNet-5, 20 passes, no distortions"),
            "test_acc": Published(0.9905, "LeCun et al., Proc. IEEE 1998 (REFERENCE.md §2)", "1 − 0.95 % error"),
            "params": Published("about 60,000", "REFERENCE.md §7", "classic LeNet-5"),
        },
        provenance={"config": {"seeds": cfg.seeds, "train": to_dict(cfg.train)}, "seeds": cfg.seeds,
                    "versions": versions(), "data_checksum": data_info["train_checksum"], "data": data_info,
                    "wall_seconds": time.perf_counter() - t0},
        figures={"Test accuracy by epoch, one line per seed": figure},
        arrays={"test_acc_by_epoch": curve_arr},
        notes=["The modern variant (ReLU, max pooling, Adam with a one-cycle schedule) over "
               f"{cfg.train.epochs} epochs, against the classic network trained for 20 passes."],
    )

