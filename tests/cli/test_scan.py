"""`convscope scan topk|invariance|clustering|occlusion --nproc 2` writes the same files, byte for byte, as one
process."""

from __future__ import annotations

import json

import pytest
import torch

from convscope.config import TrainConfig
from tests.cli.test_cli import invoke
from tests.train.test_distributed import _convscope, _mnist_or_skip


def test_a_wrong_kind_or_split_is_one_sentence(tmp_path):
    result = invoke("scan", "topk9", "--run", str(tmp_path))
    assert result.exit_code == 2 and "choose topk, invariance, clustering or occlusion" in result.output
    result = invoke("scan", "topk", "--run", str(tmp_path), "--split", "val")
    assert result.exit_code == 2 and "--split must be train or test" in result.output
    result = invoke("scan", "occlusion", "--run", str(tmp_path), "--layers", "features.conv1,features.conv2")
    assert result.exit_code == 2 and "give one --layers name" in result.output
    result = invoke("scan", "occlusion", "--run", str(tmp_path), "--window", "0")
    assert result.exit_code == 2 and "must be at least 1" in result.output


@pytest.mark.slow
@pytest.mark.xdist_group("distributed")
def test_two_processes_write_what_one_writes(tmp_path):
    _mnist_or_skip()
    from convscope.train.run import train_run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes
    try:
        train_run(TrainConfig(epochs=1, batch_size=50, train_subset=500, test_subset=100, device="cpu"),
                  tmp_path / "run", progress=False)
        for kind, names, limit in (("topk", ["topk.npz"], 300), ("invariance", ["invariance.json"], 300),
                                   ("clustering", ["clustering.json"], 300),
                                   ("occlusion", ["occlusion.json", "occlusion.npz"], 60)):
            args = ("scan", kind, "--run", str(tmp_path / "run"), "--limit", str(limit), "--batch-size",
                    "16" if kind == "occlusion" else "64")  # occlusion: 4 batches, 2 each
            one = invoke(*args, "--out", str(tmp_path / f"{kind}-1"))
            assert one.exit_code == 0, one.output
            two = _convscope(*args, "--out", str(tmp_path / f"{kind}-2"), "--nproc", "2")
            assert two.returncode == 0 and two.stderr == "", two.stderr
            for name in names:
                assert (tmp_path / f"{kind}-1" / name).read_bytes() == (tmp_path / f"{kind}-2" / name).read_bytes()
            info = json.loads((tmp_path / f"{kind}-2" / "scan.json").read_text())
            assert info["world_size"] == 2 and info["examples"] == limit
    finally:
        torch.set_num_threads(threads)
