"""A dataset pass split across `torch.distributed` ranks so that its merged result is the one-process result.

The one-process scan cuts the data into batches of `batch_size`; `rank_batches` deals those batches
round-robin to the ranks, so every example is computed in exactly the batch it would meet in one process
(the same floats, whatever the batch size does to a kernel's choices), and every rank's share differs by at
most one batch. The partial results then merge exactly: the top k of shards by `topk.merge_topk`, counts by
a sum (`sum_over_ranks`), order statistics by gathering each rank's candidates (`gather_rows`), per-example
results by putting every rank's rows back in dataset order (`gather_examples`); independent pieces of work
after the pass (one figure per layer) are dealt out by `share_out`.

It sits on the ground floor so that every instrument floor (analysis, explain) may scan in shards.

Every rank must call the same scans in the same order. Without an initialised process group (or with one
process) these are the identity: the whole dataset, the counts themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

T = TypeVar("T")
R = TypeVar("R")


def ranks() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_batches(n: int, batch_size: int) -> list[Tensor]:
    """The batches of dataset indices this rank scans: batches rank, rank + W, rank + 2W, … of the one-process scan."""
    rank, size = ranks()
    return [torch.arange(s, min(s + batch_size, n)) for s in range(rank * batch_size, n, size * batch_size)]


def sum_over_ranks(t: Tensor) -> Tensor:
    """`t` (integer counts) summed over the ranks, exactly; `t` itself in one process."""
    if ranks()[1] == 1:
        return t
    total = t.detach().to("cpu", torch.int64).clone()
    dist.all_reduce(total)
    return total.to(t.device, t.dtype)


def _all_gather(t: Tensor) -> list[Tensor]:
    """Every rank's `t` in rank order, on every rank (on the CPU). The number of rows may differ between ranks;
    the other dimensions and the dtype come from the ranks that have rows (a rank with none may hold any
    shape). Tensors travel as tensors, not pickles: one small exchange of sizes, then one `all_gather`."""
    size = ranks()[1]
    device = t.device if dist.get_backend() == "nccl" else torch.device("cpu")
    meta: list[Any] = [None] * size
    dist.all_gather_object(meta, (len(t), tuple(t.shape[1:]), t.dtype))
    shape, dtype = next(((s, d) for n, s, d in meta if n), meta[0][1:])
    most = max(n for n, _, _ in meta)
    padded = torch.zeros((most, *shape), dtype=dtype, device=device)
    if len(t):
        padded[:len(t)] = t.detach()
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    return [p[:n].cpu() for p, (n, _, _) in zip(parts, meta, strict=True)]


def gather_rows(t: Tensor) -> Tensor:
    """Every rank's `(C, m_r)` tensor joined along dim 1 (rank order), on every rank; `t` in one process."""
    if ranks()[1] == 1:
        return t
    return torch.cat([p.T for p in _all_gather(t.T)], 1).to(t.device)


def gather_examples(t: Tensor, index: Tensor, n: int) -> Tensor:
    """Every rank's rows `t` (m_r, ...), those of dataset examples `index` (m_r,), in dataset order: (n, ...).

    On every rank; `t` itself in one process, where `index` must be `arange(n)` (the whole dataset).
    """
    if ranks()[1] == 1:
        return t
    rows, values = torch.cat(_all_gather(index)), torch.cat(_all_gather(t))
    out = torch.empty((n, *values.shape[1:]), dtype=values.dtype)
    out[rows] = values
    return out.to(t.device)


def share_out(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`[fn(item) for item in items]` on every rank, each rank computing items rank, rank + W, … and the results
    (small picklable values) exchanged; the plain list in one process."""
    rank, size = ranks()
    if size == 1:
        return [fn(item) for item in items]
    mine = [fn(items[i]) for i in range(rank, len(items), size)]
    parts: list[Any] = [None] * size
    dist.all_gather_object(parts, mine)
    return [parts[i % size][i // size] for i in range(len(items))]


__all__ = ["gather_examples", "gather_rows", "rank_batches", "ranks", "share_out", "sum_over_ranks"]
