import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convscope.config import TrainConfig
from convscope.errors import CheckpointError
from convscope.models import create_model
from convscope.train.checkpoint import load_checkpoint, restore, save_checkpoint
from convscope.train.loop import evaluate, fit, lr_at


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


def _safetensors_entries(raw: bytes) -> dict[str, tuple[str, list[int], bytes]] | None:
    """Parse `raw` by the safetensors format (an 8-byte little-endian header length, a JSON header of
    {name: {dtype, shape, data_offsets}}, then the tensor bytes back to back); None if it is not one."""
    if len(raw) < 8:
        return None
    n = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(header, dict):
        return None
    body, header = raw[8 + n:], {k: v for k, v in header.items() if k != "__metadata__"}
    ends = sorted(v["data_offsets"] for v in header.values())
    if [b for b, _ in ends] != [0, *[e for _, e in ends[:-1]]] or (ends[-1][1] if ends else 0) != len(body):
        return None  # the tensors must tile the body exactly
    return {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def test_save_writes_only_safetensors_and_json(tmp_path, tiny_data):
    model, _ = _trained(tmp_path, tiny_data)
    save_checkpoint(tmp_path / "c2", model=model, optimizer=None, epoch=3, step=9, config={}, provenance={})
    files = {f.name: f.read_bytes() for f in (tmp_path / "c2").iterdir()}
    assert sorted(files) == ["model-0003.safetensors", "optim-0003.safetensors", "state.json"]
    assert json.loads(files.pop("state.json"))["epoch"] == 3
    for name, raw in files.items():
        assert _safetensors_entries(raw) is not None, f"{name} is not a safetensors file"
    # the weights, decoded from the raw bytes by the format alone, are the model's
    weights = _safetensors_entries(files["model-0003.safetensors"])
    for key, tensor in model.state_dict().items():
        dtype, shape, data = weights[key]
        assert dtype == "F32" and shape == list(tensor.shape), key
        np.testing.assert_array_equal(np.frombuffer(data, "<f4").reshape(shape), tensor.numpy(), err_msg=key)
    # and the check can fail: what torch.save writes (a zip of pickles) is refused
    torch.save(model.state_dict(), tmp_path / "pickled.pt")
    assert _safetensors_entries((tmp_path / "pickled.pt").read_bytes()) is None


def test_one_cycle_schedule_shape():
    cfg = TrainConfig(lr=0.01, schedule="onecycle", warmup=0.25)
    lrs = [lr_at(cfg, s, 101) for s in range(101)]
    assert lrs[0] == pytest.approx(0.01 / 25)
    assert max(lrs) == pytest.approx(0.01) and lrs.index(max(lrs)) == 25
    assert lrs[-1] == pytest.approx(0.01 / 1e4)
    assert lr_at(TrainConfig(lr=0.3, schedule="constant"), 50, 101) == 0.3


def test_evaluate_is_mean_cross_entropy_and_accuracy_and_restores_train_mode(tiny_data):
    torch.manual_seed(0)
    model = create_model("lenet5").train()
    x, y = tiny_data[1]
    out = evaluate(model, x, y, batch_size=50)  # 128 images: batches of 50, 50 and 28
    assert model.training
    with torch.no_grad():  # the oracle: one eval-mode pass over everything
        logits = model.eval()(x)
    assert out["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert out["acc"] == (logits.argmax(1) == y).float().mean().item()


def test_fit_learns_the_planted_task(tiny_data):
    torch.manual_seed(0)
    model = create_model("lenet5")
    before = evaluate(model, *tiny_data[1])["acc"]
    result = fit(model, *tiny_data, TrainConfig(epochs=4, batch_size=32, lr=0.005), progress=False)
    assert before < 0.3  # untrained: near chance (0.1 for ten classes)
    assert result.final["test_acc"] > 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
