"""Per-epoch weights (`keep_epochs`): every epoch's model is kept and readable, the optimizer state only for the
last, a resumed run ends as an uninterrupted one, and without the option nothing changes."""

from __future__ import annotations

import pytest
import torch

from convscope.config import TrainConfig
from convscope.errors import CheckpointError
from convscope.models import create_model
from convscope.train.checkpoint import epoch_weights, load_checkpoint, load_epoch_weights
from convscope.train.loop import fit
from convscope.train.run import _comparable


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("lenet5")


def _snapshots(model, rows):
    def keep(row):
        rows[row["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}
    return keep


def test_every_epochs_weights_are_kept_and_equal_the_model_after_that_epoch(tmp_path, tiny_data):
    model, seen = _model(), {}
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.005, keep_epochs=True)
    fit(model, *tiny_data, cfg, out_dir=tmp_path, progress=False, on_epoch=_snapshots(model, seen))
    names = sorted(p.name for p in (tmp_path / "checkpoint").iterdir())
    assert names == ["model-0001.safetensors", "model-0002.safetensors", "model-0003.safetensors",
                     "optim-0003.safetensors", "state.json"]
    weights = epoch_weights(tmp_path)
    assert list(weights) == [1, 2, 3] and epoch_weights(tmp_path / "checkpoint") == weights
    for epoch, path in weights.items():
        state = load_epoch_weights(path)
        for k, v in seen[epoch].items():
            assert torch.equal(state[k], v), (epoch, k)
    assert load_checkpoint(tmp_path / "checkpoint").epoch == 3


def test_without_the_option_only_the_last_epoch_is_listed(tmp_path, tiny_data):
    fit(_model(), *tiny_data, TrainConfig(epochs=2, batch_size=64, lr=0.005), out_dir=tmp_path, progress=False)
    assert list(epoch_weights(tmp_path)) == [2]
    assert epoch_weights(tmp_path / "nothing-here") == {}


class _Kill(KeyboardInterrupt):
    pass


def test_resume_keeps_the_epochs_and_ends_as_an_uninterrupted_run(tmp_path, tiny_data):
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.005, seed=3, keep_epochs=True)
    straight = _model(3)
    fit(straight, *tiny_data, cfg, out_dir=tmp_path / "a", progress=False)

    def kill(row):
        if row["epoch"] == 2:
            raise _Kill
    with pytest.raises(KeyboardInterrupt):
        fit(_model(3), *tiny_data, cfg, out_dir=tmp_path / "b", progress=False, on_epoch=kill)
    # A crash after epoch 3 wrote its weights but before its state was saved: the stray file is not listed.
    stray = tmp_path / "b" / "checkpoint" / "model-0003.safetensors"
    stray.write_bytes((tmp_path / "b" / "checkpoint" / "model-0001.safetensors").read_bytes())
    assert list(epoch_weights(tmp_path / "b")) == [1, 2]
    resumed = _model(99)
    fit(resumed, *tiny_data, cfg, out_dir=tmp_path / "b", resume=True, progress=False)
    assert list(epoch_weights(tmp_path / "b")) == [1, 2, 3]
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    a, b = epoch_weights(tmp_path / "a"), epoch_weights(tmp_path / "b")
    for e in (1, 2, 3):
        wa, wb = load_epoch_weights(a[e]), load_epoch_weights(b[e])
        assert all(torch.equal(wa[k], wb[k]) for k in wa), e


def test_a_damaged_weights_file_is_a_checkpoint_error(tmp_path, tiny_data):
    fit(_model(), *tiny_data, TrainConfig(epochs=2, batch_size=64, keep_epochs=True), out_dir=tmp_path,
        progress=False)
    path = epoch_weights(tmp_path)[1]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_epoch_weights(path)


def test_keeping_epochs_and_fields_added_later_do_not_make_a_saved_run_different():
    saved = {k: v for k, v in TrainConfig().__dict__.items() if k != "keep_epochs"}  # saved before the field
    now = TrainConfig(keep_epochs=True).__dict__
    assert _comparable(saved, resume=False) == _comparable(dict(now), resume=False)
    assert _comparable(saved, False) != _comparable({**now, "seed": 1}, False)
