"""`reproduce lenet5`: LeNet-5 on MNIST over several seeds, beside LeCun et al. (1998).

LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document recognition",
Proc. IEEE 86(11), 1998, report 0.95 % test error for LeNet-5 after 20 passes without distortions
(docs/REFERENCE.md §2). We train the modern variant (ReLU, max pooling, 28×28 input with padding 2) with
the fast recipe of `TrainConfig` and report mean and standard deviation over the seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from convscope.config import TrainConfig
from convscope.experiments import register_experiment
from convscope.result import Published, Result, mean_std, provenance
from convscope.train.loop import fit, resolve_device
from convscope.train.run import build_model, load_data

SOURCE = "LeCun et al., Proc. IEEE 1998 (docs/REFERENCE.md §2)"


@dataclass
class LeNet5Config:
    """Seeds and the training recipe shared by every seed."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train: TrainConfig = field(default_factory=lambda: TrainConfig(model="lenet5", data="mnist"))

    @classmethod
    def lab(cls) -> LeNet5Config:
        """`convscope lab`'s size: the recipe for one epoch over two seeds (about a third of the protocol's time;
        one epoch already reaches LeCun et al.'s error within the tolerance)."""
        return cls(seeds=[0, 1], train=replace(cls().train, epochs=1))


@register_experiment("lenet5", "LeNet-5 on MNIST", LeNet5Config)
def run(cfg: LeNet5Config, out_dir: Path, progress: bool = True) -> Result:
    t0 = time.perf_counter()
    (x_train, y_train), (x_test, y_test), data_info = load_data(cfg.train, progress=progress)
    accs, seconds, params, curves = [], [], 0, []
    for seed in cfg.seeds:
        tcfg = replace(cfg.train, seed=seed)
        model = build_model(tcfg, x_train.shape[1], len(data_info["classes"]), resolve_device(tcfg.device))
        params = sum(p.numel() for p in model.parameters())
        fitted = fit(model, (x_train, y_train), (x_test, y_test), tcfg, progress=progress)
        accs.append(float(fitted.final["test_acc"]))
        seconds.append(fitted.train_seconds)
        curves.append([row["test_acc"] for row in fitted.history])

    acc, acc_std = mean_std(accs)
    errors = [100 * (1 - a) for a in accs]
    return Result(
        name="lenet5",
        title="LeNet-5 on MNIST",
        metrics={
            "test_acc": acc,
            "test_acc_std": acc_std,
            "test_error_pct": mean_std(errors)[0],
            "params": int(params),
            "train_seconds": float(np.mean(seconds)),
            "epochs": cfg.train.epochs,
        },
        by_seed={"test_acc": accs, "test_error_pct": errors, "train_seconds": seconds},
        published={
            "test_error_pct": Published(0.95, SOURCE, "classic LeNet-5, 20 passes, no distortions", tolerance=0.3),
            "params": Published(60000, "docs/REFERENCE.md §7", "classic LeNet-5: about 60,000", tolerance=5000),
        },
        provenance=provenance(cfg, cfg.seeds, data_info, t0),
        arrays={"test_acc_by_epoch": np.array(curves), "seeds": np.array(cfg.seeds)},  # (seeds, epochs)
        notes=["The modern variant (ReLU, max pooling, Adam with a one-cycle schedule) over "
               f"{cfg.train.epochs} epochs, against the classic network trained for 20 passes."],
    )


__all__ = ["LeNet5Config", "run"]
