"""Training and evaluation: `fit` and `evaluate`.

The loop keeps the whole dataset as tensors on the model's device and draws mini-batches by
indexing a per-epoch permutation, which on a small CPU is several times faster than a DataLoader
with worker processes. The permutation of epoch e comes from a generator seeded with (seed, e), and
the learning rate is a pure function of the step, so a run resumed from the checkpoint of epoch k
continues exactly as if it had never stopped (checked in tests/train/test_resume.py).
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

from convscope.config import TrainConfig, to_dict
from convscope.errors import UserError
from convscope.io import append_jsonl, atomic_write_text, read_jsonl
from convscope.train.checkpoint import has_checkpoint, load_checkpoint, restore, save_checkpoint

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
    """Mean cross-entropy and accuracy of `model` on (x, y); the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss, correct = 0.0, 0
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            out = model(xb)
            loss += F.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
    finally:
        model.train(was_training)
    n = max(len(x), 1)
    return {"loss": loss / n, "acc": correct / n}


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
        cfg: TrainConfig, out_dir: str | Path | None = None, *, resume: bool = False,
        provenance: dict[str, Any] | None = None, progress: bool = True,
        on_epoch: EpochCallback | None = None) -> FitResult:
    """Train `model` on `train`, evaluating on `test` after every epoch.

    With `out_dir`, each epoch appends a row to `out_dir/metrics.jsonl` and saves a checkpoint under
    `out_dir/checkpoint/`; `resume=True` continues from that checkpoint.

    Example:
        >>> cfg = TrainConfig(epochs=1)
        >>> result = fit(create_model("lenet5"), (x_train, y_train), (x_test, y_test), cfg)
        >>> result.final["test_acc"]
    """
    if cfg.grad_clip is not None and not cfg.grad_clip > 0:
        raise UserError(f"grad_clip must be a positive gradient norm or none, not {cfg.grad_clip}.")
    device = next(model.parameters()).device
    x_train, y_train = train[0].to(device), train[1].to(device)
    x_test, y_test = test[0].to(device), test[1].to(device)
    optimizer = make_optimizer(cfg, model.parameters())
    steps_per_epoch = max(len(x_train) // cfg.batch_size, 1)  # drop the ragged last batch
    total_steps = cfg.epochs * steps_per_epoch
    config, provenance = to_dict(cfg), dict(provenance or {})
    ckpt_dir = Path(out_dir) / "checkpoint" if out_dir is not None else None
    metrics_path = Path(out_dir) / "metrics.jsonl" if out_dir is not None else None

    result, start_epoch = FitResult(), 0
    if resume and ckpt_dir is not None and has_checkpoint(ckpt_dir):
        ckpt = load_checkpoint(ckpt_dir, map_location=device)
        restore(ckpt, model, optimizer)
        start_epoch = ckpt.epoch
        # Keep only the rows of epochs the checkpoint covers (a crash may have logged one more).
        result.history = [r for r in read_jsonl(metrics_path) if r["epoch"] <= start_epoch]
        result.train_seconds = sum(r.get("seconds", 0.0) for r in result.history)
        _rewrite_jsonl(metrics_path, result.history)
    elif metrics_path is not None and metrics_path.exists():
        metrics_path.unlink()

    # Adam's second-moment buffers and MNIST's zero background produce subnormal floats, which the
    # CPU handles in microcode: flushing them to zero makes LeNet-5 training 2-4x faster on x86. The
    # flag is process-wide, so it is switched off again when training ends (float64 analyses after it
    # and other libraries expect IEEE subnormals).
    torch.set_flush_denormal(True)
    bar = _Progress(enabled=progress, total=total_steps, done=start_epoch * steps_per_epoch)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            perm = torch.randperm(len(x_train), generator=gen).to(device)
            t0 = time.perf_counter()
            run_loss = torch.zeros((), device=device)
            run_correct = torch.zeros((), device=device, dtype=torch.long)
            for i in range(steps_per_epoch):
                step = epoch * steps_per_epoch + i
                lr = lr_at(cfg, step, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                xb, yb = x_train[idx], y_train[idx]
                out = model(xb)
                loss = F.cross_entropy(out, yb, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                # Accumulate on-device; a .item() per step would synchronise a GPU every batch.
                run_loss += loss.detach() * len(yb)
                run_correct += (out.detach().argmax(1) == yb).sum()
                if i % 20 == 0 or i == steps_per_epoch - 1:
                    bar.update(step + 1, epoch=epoch + 1, epochs=cfg.epochs, loss=loss.item())
            seconds = time.perf_counter() - t0
            result.train_seconds += seconds
            seen = steps_per_epoch * cfg.batch_size
            test_metrics = evaluate(model, x_test, y_test, cfg.eval_batch_size)
            row = {"epoch": epoch + 1, "train_loss": run_loss.item() / seen, "train_acc": run_correct.item() / seen,
                   "test_loss": test_metrics["loss"], "test_acc": test_metrics["acc"], "lr": lr,
                   "seconds": seconds}
            result.history.append(row)
            bar.note(row)
            if out_dir is not None:
                append_jsonl(metrics_path, row)
                save_checkpoint(ckpt_dir, model=model, optimizer=optimizer, epoch=epoch + 1,
                                step=(epoch + 1) * steps_per_epoch, config=config, provenance=provenance,
                                extra={"train_seconds": result.train_seconds})
            if on_epoch is not None:
                on_epoch(row)
            result.epochs_run += 1
    finally:
        bar.close()
        torch.set_flush_denormal(False)
    model.eval()
    return result


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
