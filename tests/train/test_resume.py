"""A run killed after epoch 1 and resumed ends with exactly the weights of an uninterrupted run."""

import pytest
import torch

from convscope.config import TrainConfig
from convscope.io import read_jsonl
from convscope.models import create_model
from convscope.train.loop import fit


class _Kill(KeyboardInterrupt):
    pass


def _kill_after(epoch):
    def cb(row):
        if row["epoch"] == epoch:
            raise _Kill
    return cb


def _model(seed):
    torch.manual_seed(seed)
    return create_model("lenet5")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_equals_uninterrupted(tmp_path, tiny_data, optimizer):
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.005, optimizer=optimizer, seed=7)
    straight = _model(7)
    fit(straight, *tiny_data, cfg, out_dir=tmp_path / "a", progress=False)

    killed = _model(7)
    with pytest.raises(KeyboardInterrupt):
        fit(killed, *tiny_data, cfg, out_dir=tmp_path / "b", progress=False, on_epoch=_kill_after(1))
    resumed = _model(123)  # a different init: everything must come from the checkpoint
    result = fit(resumed, *tiny_data, cfg, out_dir=tmp_path / "b", resume=True, progress=False)

    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{k} differs after resume"
    assert [r["epoch"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl")] == [1, 2, 3]
    assert result.history[-1]["test_acc"] == read_jsonl(tmp_path / "a" / "metrics.jsonl")[-1]["test_acc"]
