"""Training is a function of the seed: the same run twice in one process gives bit-identical weights,
whatever ran in between (another model's training, flush-denormal left on, the global RNG used, the
thread count changed and set back). Between processes the thread count and the CPU's instruction set
can still change the bits; result provenance records both (convscope.result.versions)."""

from __future__ import annotations

import torch

from convscope.config import TrainConfig
from convscope.result import versions
from convscope.train.loop import fit
from convscope.train.run import build_model

CFG = TrainConfig(model="allconv-c", epochs=1, batch_size=64, lr=0.003, device="cpu", seed=3,
                  model_args={"activation": "crelu", "width": 0.0625, "final_relu": False})


def _train(data) -> dict[str, torch.Tensor]:
    train, test = data
    model = build_model(CFG, in_channels=1, num_classes=10, device=torch.device("cpu"))
    fit(model, train, test, CFG, progress=False)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _something_else(data) -> None:
    train, test = data
    torch.manual_seed(123)
    lenet = build_model(TrainConfig(model="lenet5", seed=7, device="cpu"), 1, 10, torch.device("cpu"))
    fit(lenet, train, test, TrainConfig(epochs=1, batch_size=32, seed=7, device="cpu"), progress=False)
    torch.randn(1000)  # the global RNG moves on
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # left on, as a library might leave it


def test_same_seed_same_weights_whatever_ran_before(tiny_data):
    first = _train(tiny_data)
    try:
        _something_else(tiny_data)
        second = _train(tiny_data)
    finally:
        torch.set_flush_denormal(False)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name  # bit for bit, not approximately


def test_provenance_records_what_can_still_change_the_bits():
    v = versions()
    assert int(v["threads"]) == torch.get_num_threads()
    assert v["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and v["torch"] == torch.__version__
    assert v["cuda"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
