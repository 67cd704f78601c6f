"""Wall time to 99.0 % MNIST test accuracy: convscope's recipe against a plain reference loop.

Both train the same LeNet-5 (`create_model("lenet5")`) from the same seeds on the full 60k training
set and are evaluated on the 10k test set; evaluation time is not counted. The reference is the
loop most tutorials write: a DataLoader over the tensors, batch 64, Adam at 1e-3, no schedule; its
time is when its test accuracy (checked four times an epoch) first reaches 99.0 %. convscope's `fit`
keeps the data as tensors, slices batches from a permutation, and runs a fixed budget: 2 epochs at
batch 256, a one-cycle learning rate peaking at 0.02 and label smoothing 0.1 (the default recipe,
one epoch shorter); its time is that budget, and it counts as
reaching the target when the mean test accuracy over the seeds is at least 99.0 % (the measure of
docs/REFERENCE.md §8). Goal (issue 2): at most 15 s, and at least 4× faster than the reference.

Usage: python benchmarks/train_speed.py [SEEDS...]   (default 0 1 2). Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from statistics import mean

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from convscope.config import TrainConfig
from convscope.data import load_dataset
from convscope.models import create_model
from convscope.train.loop import evaluate, fit

TARGET = 0.99
FAST = replace(TrainConfig(), epochs=2, device="cpu")


def fast_run(train, test, seed):
    torch.manual_seed(seed)
    model = create_model("lenet5")
    result = fit(model, train, test, replace(FAST, seed=seed), progress=False)
    return {"seed": seed, "train_seconds": result.train_seconds, "final_acc": result.final["test_acc"]}


def reference_run(train, test, seed, max_epochs=10, evals_per_epoch=4):
    """The plain loop; evaluated `evals_per_epoch` times an epoch (not timed) to find when it crosses 99 %."""
    torch.manual_seed(seed)
    model = create_model("lenet5")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(*train), batch_size=64, shuffle=True)
    every = len(loader) // evals_per_epoch
    elapsed, curve = 0.0, []
    for epoch in range(max_epochs):
        t0 = time.perf_counter()
        for i, (xb, yb) in enumerate(loader, 1):
            model.train()
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i % every == 0:
                elapsed += time.perf_counter() - t0
                acc = evaluate(model, *test)["acc"]
                curve.append((round(elapsed, 2), acc))
                if acc >= TARGET:
                    return {"seconds_to_target": elapsed, "final_acc": acc, "epochs": epoch + i / len(loader),
                            "curve": curve}
                t0 = time.perf_counter()
        elapsed += time.perf_counter() - t0
    return {"seconds_to_target": None, "final_acc": curve[-1][1], "epochs": max_epochs, "curve": curve}


def main() -> int:
    train = load_dataset("mnist", "train").tensors()
    test = load_dataset("mnist", "test").tensors()
    seeds = [int(a) for a in sys.argv[1:]] or [0, 1, 2]
    fast = [fast_run(train, test, seed) for seed in seeds]
    ref = [reference_run(train, test, seed) for seed in seeds]
    fast_acc = mean(r["final_acc"] for r in fast)
    fast_seconds = mean(r["train_seconds"] for r in fast)
    ref_times = [r["seconds_to_target"] for r in ref]
    ref_seconds = mean(ref_times) if all(t is not None for t in ref_times) else None
    reached = fast_acc >= TARGET
    speedup = ref_seconds / fast_seconds if reached and ref_seconds else None
    out = {
        "benchmark": "train_speed", "target_test_acc": TARGET, "device": "cpu", "threads": torch.get_num_threads(),
        "torch": torch.__version__, "seeds": seeds,
        "convscope": {"recipe": {"epochs": FAST.epochs, "batch_size": FAST.batch_size, "lr": FAST.lr,
                                 "schedule": FAST.schedule, "label_smoothing": FAST.label_smoothing},
                      "mean_test_acc": fast_acc,
                      "seconds_to_target": fast_seconds if reached else None, "runs": fast},
        "reference": {"recipe": {"batch_size": 64, "optimizer": "adam", "lr": 1e-3},
                      "seconds_to_target": ref_seconds, "runs": ref},
        "speedup": speedup, "goal": {"max_seconds": 15, "min_speedup": 4},
        "met": bool(reached and fast_seconds <= 15 and speedup and speedup >= 4),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
