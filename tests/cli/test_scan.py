"""`convscope scan topk|invariance --nproc 2` writes the same files, byte for byte, as one process."""

from __future__ import annotations

import json

import pytest
import torch

from convscope.config import TrainConfig
from tests.cli.test_cli import invoke
from tests.train.test_distributed import _convscope, _mnist_or_skip


def test_a_wrong_kind_or_split_is_one_sentence(tmp_path):
    result = invoke("scan", "topk9", "--run", str(tmp_path))
    assert result.exit_code == 2 and "choose topk or invariance" in result.output
    result = invoke("scan", "topk", "--run", str(tmp_path), "--split", "val")
    assert result.exit_code == 2 and "--split must be train or test" in result.output


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
        for kind, name in (("topk", "topk.npz"), ("invariance", "invariance.json")):
            one = invoke("scan", kind, "--run", str(tmp_path / "run"), "--out", str(tmp_path / f"{kind}-1"),
                         "--limit", "300", "--batch-size", "64")
            assert one.exit_code == 0, one.output
            two = _convscope("scan", kind, "--run", str(tmp_path / "run"), "--out", str(tmp_path / f"{kind}-2"),
                             "--limit", "300", "--batch-size", "64", "--nproc", "2")
            assert two.returncode == 0 and two.stderr == "", two.stderr
            assert (tmp_path / f"{kind}-1" / name).read_bytes() == (tmp_path / f"{kind}-2" / name).read_bytes()
            info = json.loads((tmp_path / f"{kind}-2" / "scan.json").read_text())
            assert info["world_size"] == 2 and info["examples"] == 300
    finally:
        torch.set_num_threads(threads)
