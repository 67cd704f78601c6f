"""A dataset pass split across `torch.distributed` ranks so that its merged result is the one-process result.

The one-process scan cuts the data into batches of `batch_size`; `rank_batches` deals those batches
round-robin to the ranks, so every example is computed in exactly the batch it would meet in one process
(the same floats, whatever the batch size does to a kernel's choices), and every rank's share differs by at
most one batch. The partial results then merge exactly: the top k of shards by `topk.merge_topk`, counts by
a sum (`sum_over_ranks`), order statistics by gathering each rank's candidates (`gather_rows`), per-example
results by putting every rank's rows back in dataset order (`gather_examples`).

It sits on the ground floor so that every instrument floor (analysis, explain) may scan in shards.

Every rank must call the same scans in the same order. Without an initialised process group (or with one
process) these are the identity: the whole dataset, the counts themselves.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


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


def gather_rows(t: Tensor) -> Tensor:
    """Every rank's `(C, m_r)` tensor joined along dim 1 (rank order), on every rank; `t` in one process."""
    if ranks()[1] == 1:
        return t
    parts: list[Any] = [None] * ranks()[1]
    dist.all_gather_object(parts, t.cpu())
    return torch.cat(parts, 1).to(t.device)


def gather_examples(t: Tensor, index: Tensor, n: int) -> Tensor:
    """Every rank's rows `t` (m_r, ...), those of dataset examples `index` (m_r,), in dataset order: (n, ...).

    On every rank; `t` itself in one process, where `index` must be `arange(n)` (the whole dataset).
    """
    if ranks()[1] == 1:
        return t
    parts: list[Any] = [None] * ranks()[1]
    dist.all_gather_object(parts, (index.cpu(), t.detach().cpu()))
    like = next((values for _, values in parts if len(values)), parts[0][1])  # a rank with no rows: any shape
    out = torch.empty((n, *like.shape[1:]), dtype=like.dtype)
    for rows, values in parts:
        if len(rows):
            out[rows] = values
    return out.to(t.device)


__all__ = ["gather_examples", "gather_rows", "rank_batches", "ranks", "sum_over_ranks"]
