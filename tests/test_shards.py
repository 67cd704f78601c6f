"""Dataset scans on two torch.distributed processes (gloo, loopback) equal the one-process scans exactly:
the top-9 examples per channel, the invariance scores (thresholds, firing rates, scores), the layer clustering
figures (k-NN accuracy, scatter ratio) and occlusion pointing over the images (per image, two regions)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from convscope import shards
from convscope.analysis.clustering import clustering_scan
from convscope.analysis.invariance import invariance_scores
from convscope.analysis.topk import top_examples
from convscope.errors import UserError
from convscope.explain.occlusion_maps import ink_region, pointing_scan, top_fraction_region
from convscope.models import create_model

LAYERS = ["features.conv1", "features.pool1", "features.conv2"]


def _setup() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return create_model("lenet5").eval(), torch.rand(37, 1, 28, 28)  # 37: the ranks' shares are uneven


def _scans(distributed: bool) -> dict:
    model, x = _setup()
    tops = top_examples(model, x, LAYERS, k=9, batch_size=8, distributed=distributed)
    inv = invariance_scores(model, x, LAYERS, rate=0.05, batch_size=8, distributed=distributed)
    y = torch.arange(len(x)) % 3  # three classes
    clus = clustering_scan(model, x, y, k=3, batch_size=8, chunk=4, distributed=distributed)  # 5 query chunks
    regions = {"ink": lambda xb, _: ink_region(xb, 0.7), "projection": lambda _, m: top_fraction_region(m.projection)}
    point = pointing_scan(model, x[:13], y[:13], regions, batch_size=3, distributed=distributed, window=9, stride=5)
    return {"tops": tops, "inv": inv, "clus": clus, "point": point}


def test_the_batches_are_dealt_round_robin_and_cover_the_data_once(monkeypatch):
    assert [b.tolist() for b in shards.rank_batches(5, 2)] == [[0, 1], [2, 3], [4]]  # one process: all
    dealt = []
    for rank in range(3):
        monkeypatch.setattr(shards, "ranks", lambda rank=rank: (rank, 3))
        dealt.append([b.tolist() for b in shards.rank_batches(11, 2)])
    assert dealt == [[[0, 1], [6, 7]], [[2, 3], [8, 9]], [[4, 5], [10]]]


def test_a_distributed_top_k_scan_takes_the_whole_tensor():
    model, x = _setup()
    with pytest.raises(UserError, match="without indices"):
        top_examples(model, x, indices=range(len(x)), distributed=True)
    with pytest.raises(UserError, match="one \\(N, C, H, W\\) tensor"):
        top_examples(model, [x[:5]], distributed=True)


@contextmanager
def _group(rank: int, world: int) -> Iterator[None]:
    """This spawned process as rank `rank` of a gloo group on the loopback."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ["SHARDS_PORT"])
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def _spawn(fn: Callable[[int, int, str], None], path: str) -> None:
    from convscope.train.distributed import free_port

    os.environ["SHARDS_PORT"] = str(free_port())
    mp.spawn(fn, args=(2, path), nprocs=2)


def _rank(rank: int, world: int, path: str) -> None:
    torch.set_num_threads(1)
    with _group(rank, world):
        result = _scans(distributed=True)
        if rank == 0:
            torch.save(result, path)


@pytest.mark.xdist_group("distributed")
def test_two_ranks_scan_exactly_what_one_process_scans(tmp_path):
    _spawn(_rank, str(tmp_path / "scans.pt"))
    merged = torch.load(tmp_path / "scans.pt", weights_only=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank
    try:
        alone = _scans(distributed=False)
    finally:
        torch.set_num_threads(threads)
    for layer in LAYERS:
        a, b = merged["tops"][layer], alone["tops"][layer]
        assert torch.equal(a.values, b.values) and torch.equal(a.index, b.index) and torch.equal(a.pos, b.pos)
        for family, inv in alone["inv"][layer].items():
            got = merged["inv"][layer][family]
            for field in ("threshold", "global_rate", "local_rate"):
                np.testing.assert_array_equal(getattr(got, field), getattr(inv, field), err_msg=f"{layer} {field}")
            assert got.score == inv.score or (np.isnan(got.score) and np.isnan(inv.score))
    assert merged["clus"] == alone["clus"]  # layers, k-NN accuracies and scatter ratios, exactly
    assert len(alone["clus"].layers) > 3
    for region, point in alone["point"].items():
        for field in ("best", "drop", "hit", "chance"):
            assert torch.equal(getattr(merged["point"][region], field), getattr(point, field)), f"{region} {field}"


def _primitives(rank: int, world: int, path: str) -> None:
    """Uneven shares, one rank without rows (of another shape: a scan's empty `torch.zeros(0)`)."""
    with _group(rank, world):
        full = torch.arange(30, dtype=torch.float64).view(5, 2, 3)
        index = torch.tensor([3, 0, 4, 1, 2]) if rank == 0 else torch.zeros(0, dtype=torch.long)
        mine = full[index] if rank == 0 else torch.zeros(0)
        rows = torch.arange(12).view(3, 4) if rank == 0 else torch.zeros(3, 0, dtype=torch.long)
        result = {"examples": shards.gather_examples(mine, index, 5), "rows": shards.gather_rows(rows),
                  "shared": shards.share_out(lambda i: (i, shards.ranks()[0]), list(range(5)))}
        torch.save(result, f"{path}.{rank}")


@pytest.mark.xdist_group("distributed")
def test_the_gathers_take_uneven_and_empty_shares_and_share_out_deals_round_robin(tmp_path):
    _spawn(_primitives, str(tmp_path / "prim.pt"))
    for rank in range(2):  # every rank gets the same
        got = torch.load(tmp_path / f"prim.pt.{rank}", weights_only=False)
        assert torch.equal(got["examples"], torch.arange(30, dtype=torch.float64).view(5, 2, 3))
        assert torch.equal(got["rows"], torch.arange(12).view(3, 4))
        assert got["shared"] == [(0, 0), (1, 1), (2, 0), (3, 1), (4, 0)]
