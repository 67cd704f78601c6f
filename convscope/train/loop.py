"""Training and evaluation: `fit` and `evaluate`.

The loop keeps the whole dataset as tensors on the model's device and draws mini-batches by
indexing a per-epoch permutation, which on a small CPU is several times faster than a DataLoader
with worker processes. The permutation of epoch e comes from a generator seeded with (seed, e), and
the learning rate is a pure function of the step, so a run resumed from the checkpoint of epoch k
continues exactly as if it had never stopped (checked in tests/train/test_resume.py).

Launched on several processes (`--nproc N`, torchrun; train/distributed.py), `fit` wraps the model in
DistributedDataParallel, each rank trains on its part of every global batch (`distributed.batch_slice`:
the batch size stays the global one, split across the processes), the epoch's loss, accuracy and test
figures are summed over the ranks, and rank 0 alone writes the metrics and checkpoints. BatchNorm statistics
are each rank's own unless `sync_bn` swaps the layers for SyncBatchNorm during the run (GPUs only). A checkpoint
holds nothing per rank, so a run may resume on another number of processes that divides the batch size.

`fit` takes a `TrainConfig` or the recipe fields as keywords (`fit(model, train, test, epochs=1)`), and
like every function here that takes a user's model it hands each module back in the train/eval mode it
came in (`hooks.eval_mode`): a BatchNorm frozen in eval mode stays frozen.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from convscope.config import TrainConfig, from_dict, to_dict
from convscope.errors import ArgumentError, UserError
from convscope.hooks import eval_mode, model_device
from convscope.io import append_jsonl, atomic_write_text, read_jsonl
from convscope.train.checkpoint import has_checkpoint, load_checkpoint, restore, save_checkpoint
from convscope.train.distributed import SYNC_BN_NEEDS_CUDA, World, all_sum, batch_slice, sync_batchnorm, world

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class FitResult:
    """What `fit` returns: the per-epoch history and the final figures."""

    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    epochs_run: int = 0

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when PyTorch sees a GPU, else the CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"Unknown device {name!r}: use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"Device {name!r} was asked for but PyTorch sees no CUDA GPU here: use --device cpu.")
    return device


def make_optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise UserError(f"Unknown optimizer {cfg.optimizer!r}: use adam, sgd or adagrad.")


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate at `step` of `total`: one-cycle (linear warm-up, cosine down), cosine, or constant."""
    if cfg.schedule == "constant" or total <= 1:
        return cfg.lr
    t = step / (total - 1)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))
    # One-cycle (Smith 2018): from lr/25 up to lr over `warmup` of the steps, then cosine down to lr/1e4.
    w = max(cfg.warmup, 1e-8)
    if t < w:
        return cfg.lr / 25 + (cfg.lr - cfg.lr / 25) * t / w
    u = (t - w) / max(1 - w, 1e-8)
    return cfg.lr / 1e4 + (cfg.lr - cfg.lr / 1e4) * 0.5 * (1 + math.cos(math.pi * u))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> dict[str, float]:
    """Mean cross-entropy and accuracy of `model` on (x, y), in eval mode; each module's own mode is restored."""
    loss, correct = _eval_sums(model, x, y, batch_size)
    n = max(len(x), 1)
    return {"loss": loss / n, "acc": correct / n}


def _eval_sums(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, int]:
    """Summed cross-entropy and number of correct predictions of `model` on (x, y), in eval mode."""
    device = model_device(model)
    loss, correct = 0.0, 0
    with torch.no_grad(), eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            out = model(xb)
            loss += F.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
    return loss, correct


def _evaluate_shared(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                     w: World) -> dict[str, float]:
    """`evaluate` with the test set cut into one contiguous part per rank and the sums added (exact counts)."""
    if w.size == 1:
        return evaluate(model, x, y, batch_size)
    bounds = [len(x) * r // w.size for r in range(w.size + 1)]
    part = slice(bounds[w.rank], bounds[w.rank + 1])
    loss, correct = all_sum(torch.tensor(_eval_sums(model, x[part], y[part], batch_size), dtype=torch.float64))[0]
    n = max(len(x), 1)
    return {"loss": loss.item() / n, "acc": int(correct.item()) / n}


# The TrainConfig fields `fit` reads; the others (model, data, device, subsets) belong to a run (train/run.py).
RECIPE_FIELDS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "label_smoothing",
                 "grad_clip", "schedule", "warmup", "seed", "eval_batch_size", "keep_epochs", "sync_bn")


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
        cfg: TrainConfig | None = None, *, out_dir: str | Path | None = None, resume: bool = False,
        provenance: dict[str, Any] | None = None, progress: bool = True, on_epoch: EpochCallback | None = None,
        **recipe: Any) -> FitResult:
    """Train `model` on `train`, evaluating on `test` after every epoch.

    The recipe is `cfg` (default `TrainConfig()`) with any of `RECIPE_FIELDS` given as keywords
    replacing its fields. With `out_dir`, each epoch appends a row to `out_dir/metrics.jsonl` and saves
    a checkpoint under `out_dir/checkpoint/` (the last epoch's, or with `keep_epochs` every epoch's model
    weights, `train.checkpoint.epoch_weights`); `resume=True` continues from that checkpoint. The model
    trains on its own device and, once trained, has each module's train/eval mode as it came in. In a
    process group (train/distributed.py) every rank calls `fit` alike and rank 0 writes the files.

    Example:
        >>> result = fit(create_model("lenet5"), (x_train, y_train), (x_test, y_test), epochs=1, lr=0.01)
        >>> result.final["test_acc"]
    """
    cfg = _recipe(cfg, recipe)
    modes = {m: m.training for m in model.modules()}  # before any BatchNorm is swapped for a SyncBatchNorm
    run = _setup(model, train, test, cfg, out_dir, resume, provenance)
    # Adam's second-moment buffers and MNIST's zero background produce subnormal floats, which the
    # CPU handles in microcode: flushing them to zero makes LeNet-5 training 2-4x faster on x86. The
    # flag is process-wide, so it is switched off again when training ends (float64 analyses after it
    # and other libraries expect IEEE subnormals).
    torch.set_flush_denormal(True)
    bar = _Progress(enabled=progress and run.world.main, total=run.total_steps,
                    done=run.start_epoch * run.steps_per_epoch)
    try:
        for epoch in range(run.start_epoch, cfg.epochs):
            row = _train_epoch(model, run, cfg, epoch, bar)
            run.result.history.append(row)
            bar.note(row)
            if out_dir is not None and run.world.main:
                _save_epoch(model, run, epoch)
            if on_epoch is not None:
                on_epoch(row)
            run.result.epochs_run += 1
    finally:
        bar.close()
        torch.set_flush_denormal(False)
        run.unsync()
        for m, mode in modes.items():
            m.training = mode
    return run.result


def _recipe(cfg: TrainConfig | None, recipe: dict[str, Any]) -> TrainConfig:
    """`cfg` with the keyword fields of `recipe` replaced, each checked and converted as `--set` would be."""
    cfg = cfg if cfg is not None else TrainConfig()
    wrong = sorted(set(recipe) - set(RECIPE_FIELDS))
    if wrong:
        raise ArgumentError(f"fit does not take {', '.join(map(repr, wrong))}: its recipe keywords are "
                        f"{', '.join(RECIPE_FIELDS)} (the model, data and device are the caller's).")
    if recipe:
        cfg = from_dict(TrainConfig, {**to_dict(cfg), **recipe})
    if cfg.grad_clip is not None and not cfg.grad_clip > 0:
        raise UserError(f"grad_clip must be a positive gradient norm or none, not {cfg.grad_clip}.")
    for key in ("batch_size", "eval_batch_size"):
        if getattr(cfg, key) < 1:
            raise UserError(f"{key} must be at least 1, not {getattr(cfg, key)}.")
    return cfg


@dataclass
class _Run:
    """What one call of `fit` sets up: the data on the model's device, the optimizer, the step counts, the files."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    net: nn.Module  # what the steps call: the model, or DistributedDataParallel around it
    world: World
    optimizer: torch.optim.Optimizer
    steps_per_epoch: int
    total_steps: int
    config: dict[str, Any]
    provenance: dict[str, Any]
    ckpt_dir: Path | None
    metrics_path: Path | None
    result: FitResult
    start_epoch: int
    keep_epochs: bool = False
    unsync: Callable[[], None] = lambda: None  # puts back the BatchNorm layers `sync_batchnorm` swapped


def _setup(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
           cfg: TrainConfig, out_dir: str | Path | None, resume: bool, provenance: dict[str, Any] | None) -> _Run:
    """Move the data to the model, build the optimizer, and resume from `out_dir`'s checkpoint if asked."""
    device = model_device(model)
    w = world()
    batch_slice(0, cfg.batch_size, w)  # a batch size that does not split across the processes fails here
    steps_per_epoch = max(len(train[0]) // cfg.batch_size, 1)  # drop the ragged last batch
    run = _Run(train[0].to(device), train[1].to(device), test[0].to(device), test[1].to(device),
               model, w, make_optimizer(cfg, model.parameters()), steps_per_epoch, cfg.epochs * steps_per_epoch,
               to_dict(cfg), dict(provenance or {}),
               Path(out_dir) / "checkpoint" if out_dir is not None else None,
               Path(out_dir) / "metrics.jsonl" if out_dir is not None else None, FitResult(), 0, cfg.keep_epochs)
    if resume and run.ckpt_dir is not None and has_checkpoint(run.ckpt_dir):
        ckpt = load_checkpoint(run.ckpt_dir, map_location=device)
        restore(ckpt, model, run.optimizer)
        run.start_epoch = ckpt.epoch
        # Keep only the rows of epochs the checkpoint covers (a crash may have logged one more).
        run.result.history = [r for r in read_jsonl(run.metrics_path) if r["epoch"] <= run.start_epoch]
        run.result.train_seconds = sum(r.get("seconds", 0.0) for r in run.result.history)
        if w.main:
            _rewrite_jsonl(run.metrics_path, run.result.history)
    elif run.metrics_path is not None and run.metrics_path.exists() and w.main:
        run.metrics_path.unlink()
    if w.size > 1 and cfg.sync_bn:
        if device.type != "cuda":
            raise UserError(SYNC_BN_NEEDS_CUDA)
        run.unsync = sync_batchnorm(model)  # the last step before DDP: nothing between may fail
    if w.size > 1:
        # After the checkpoint is restored: DDP starts every rank from rank 0's weights (the same ones here).
        run.net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    return run


def _train_epoch(model: nn.Module, run: _Run, cfg: TrainConfig, epoch: int, bar: _Progress) -> dict[str, Any]:
    """One pass over a seeded permutation of the training set, then the test figures: the epoch's row."""
    model.train()
    device = run.x_train.device
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    perm = torch.randperm(len(run.x_train), generator=gen).to(device)
    t0 = time.perf_counter()
    run_loss = torch.zeros((), device=device)
    run_correct = torch.zeros((), device=device, dtype=torch.long)
    for i in range(run.steps_per_epoch):
        step = epoch * run.steps_per_epoch + i
        lr = lr_at(cfg, step, run.total_steps)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        idx = perm[batch_slice(i, cfg.batch_size, run.world)]  # this rank's part of the global batch
        xb, yb = run.x_train[idx], run.y_train[idx]
        out = run.net(xb)
        loss = F.cross_entropy(out, yb, label_smoothing=cfg.label_smoothing)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        run.optimizer.step()
        # Accumulate on-device; a .item() per step would synchronise a GPU every batch.
        run_loss += loss.detach() * len(yb)
        run_correct += (out.detach().argmax(1) == yb).sum()
        if i % 20 == 0 or i == run.steps_per_epoch - 1:
            bar.update(step + 1, epoch=epoch + 1, epochs=cfg.epochs, loss=loss.item())
    run_loss, run_correct = all_sum(run_loss, run_correct)
    seconds = time.perf_counter() - t0
    run.result.train_seconds += seconds
    seen = run.steps_per_epoch * cfg.batch_size
    test_metrics = _evaluate_shared(model, run.x_test, run.y_test, cfg.eval_batch_size, run.world)
    return {"epoch": epoch + 1, "train_loss": run_loss.item() / seen, "train_acc": run_correct.item() / seen,
            "test_loss": test_metrics["loss"], "test_acc": test_metrics["acc"], "lr": lr, "seconds": seconds}


def _save_epoch(model: nn.Module, run: _Run, epoch: int) -> None:
    """Log the epoch's row and save its checkpoint (model, optimizer, step, config, provenance)."""
    append_jsonl(run.metrics_path, run.result.history[-1])
    save_checkpoint(run.ckpt_dir, model=model, optimizer=run.optimizer, epoch=epoch + 1,
                    step=(epoch + 1) * run.steps_per_epoch, config=run.config, provenance=run.provenance,
                    extra={"train_seconds": run.result.train_seconds}, keep_epochs=run.keep_epochs)


def _rewrite_jsonl(path: Path | None, rows: list[dict[str, Any]]) -> None:
    if path is None:
        return
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


class _Progress:
    """A rich progress bar with loss and accuracy; silent when disabled."""

    def __init__(self, enabled: bool, total: int, done: int = 0) -> None:
        self._bar = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("[bold]train[/] epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                             BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
                             TimeRemainingColumn(), transient=False)
        self._bar.start()
        self._task = self._bar.add_task("train", total=total, completed=done, epoch=0, epochs=0, loss=float("nan"))

    def update(self, completed: int, **fields: Any) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, **fields)

    def note(self, row: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.console.print(
                f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
                f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} | {row['seconds']:.1f}s")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
