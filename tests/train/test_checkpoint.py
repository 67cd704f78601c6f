import pytest
import torch

from convscope.config import TrainConfig
from convscope.errors import CheckpointError
from convscope.models import create_model
from convscope.train.checkpoint import load_checkpoint, restore, save_checkpoint
from convscope.train.loop import fit, lr_at


def _trained(tmp_path, tiny_data, epochs=1):
    torch.manual_seed(0)
    model = create_model("lenet5")
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.005)
    fit(model, *tiny_data, cfg, out_dir=tmp_path, progress=False)
    return model, cfg


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path, tiny_data):
    model, _ = _trained(tmp_path, tiny_data)
    ckpt = load_checkpoint(tmp_path / "checkpoint")
    assert ckpt.epoch == 1 and ckpt.config["batch_size"] == 64
    fresh = create_model("lenet5")
    opt = torch.optim.Adam(fresh.parameters())
    restore(ckpt, fresh, opt)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert len(opt.state) == len(list(fresh.parameters()))
    assert all("exp_avg" in s for s in opt.state.values())


def test_only_the_latest_epoch_is_kept(tmp_path, tiny_data):
    _trained(tmp_path, tiny_data, epochs=2)
    names = sorted(p.name for p in (tmp_path / "checkpoint").iterdir())
    assert names == ["model-0002.safetensors", "optim-0002.safetensors", "state.json"]


@pytest.mark.parametrize("damage", ["truncate", "garbage_state", "missing_file"])
def test_damaged_checkpoint_is_a_user_error(tmp_path, tiny_data, damage):
    _trained(tmp_path, tiny_data)
    ckpt = tmp_path / "checkpoint"
    if damage == "truncate":
        f = ckpt / "model-0001.safetensors"
        f.write_bytes(f.read_bytes()[:1000])
    elif damage == "garbage_state":
        (ckpt / "state.json").write_text("{not json")
    else:
        (ckpt / "optim-0001.safetensors").unlink()
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(ckpt)


def test_missing_checkpoint_says_train_first(tmp_path):
    with pytest.raises(CheckpointError, match="train first"):
        load_checkpoint(tmp_path)


def test_checkpoint_of_another_model_does_not_fit(tmp_path, tiny_data):
    _trained(tmp_path, tiny_data)
    with pytest.raises(CheckpointError, match="does not fit"):
        restore(load_checkpoint(tmp_path / "checkpoint"), create_model("lenet5", activation="crelu"))


def test_save_never_pickles(tmp_path, tiny_data):
    model, cfg = _trained(tmp_path, tiny_data)
    save_checkpoint(tmp_path / "c2", model=model, optimizer=None, epoch=3, step=9, config={}, provenance={})
    for f in (tmp_path / "c2").iterdir():
        assert b"\x80\x04" not in f.read_bytes()[:2]  # no pickle protocol header


def test_one_cycle_schedule_shape():
    cfg = TrainConfig(lr=0.01, schedule="onecycle", warmup=0.25)
    lrs = [lr_at(cfg, s, 101) for s in range(101)]
    assert lrs[0] == pytest.approx(0.01 / 25)
    assert max(lrs) == pytest.approx(0.01) and lrs.index(max(lrs)) == 25
    assert lrs[-1] == pytest.approx(0.01 / 1e4)
    assert lr_at(TrainConfig(lr=0.3, schedule="constant"), 50, 101) == 0.3


def test_fit_learns_the_planted_task(tiny_data):
    torch.manual_seed(0)
    model = create_model("lenet5")
    result = fit(model, *tiny_data, TrainConfig(epochs=4, batch_size=32, lr=0.005), progress=False)
    assert result.final["test_acc"] > 0.9 > result.history[0]["train_acc"] - 0.5
