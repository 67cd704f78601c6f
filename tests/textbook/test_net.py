"""The NumPy LeNet-5 against the PyTorch one, SGD with momentum against torch.optim.SGD, and a short
real training run on an MNIST subset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convscope.data import load_dataset
from convscope.errors import DataNotFoundError
from convscope.models import create_model
from convscope.textbook import (
    SGD,
    NumpyTrainConfig,
    SoftmaxCrossEntropy,
    batch_order,
    evaluate,
    lenet5,
    train_numpy_lenet,
)


def torch_twin(net, dtype=torch.float64) -> torch.nn.Module:
    """create_model("lenet5") carrying the NumPy net's weights."""
    model = create_model("lenet5").to(dtype)
    state = model.state_dict()
    mine = net.state_dict()
    model.load_state_dict({k: torch.from_numpy(mine[".".join(k.split(".")[-2:])]).to(dtype) for k in state})
    return model


def test_lenet5_has_the_torch_architecture_and_parameter_count() -> None:
    net = lenet5(seed=0)
    model = create_model("lenet5")
    assert net.num_params() == sum(p.numel() for p in model.parameters()) == 61_706
    assert list(net.layers) == [name.split(".")[-1] for name, m in model.named_modules() if "." in name]
    assert {k: v.shape for k, v in net.state_dict().items()} == {
        ".".join(k.split(".")[-2:]): tuple(v.shape) for k, v in model.state_dict().items()}


def test_lenet5_forward_and_every_gradient_match_autograd() -> None:
    rng = np.random.default_rng(0)
    net = lenet5(seed=1, dtype=np.float64)
    model = torch_twin(net)
    x, y = rng.random((5, 1, 28, 28)), rng.integers(0, 10, 5)
    loss_fn = SoftmaxCrossEntropy()
    logits = net.forward(x)
    loss = loss_fn(logits, y)
    assert net.backward(loss_fn.backward()) is None  # conv1 skips the image's gradient
    out = model(torch.from_numpy(x))
    ref = F.cross_entropy(out, torch.from_numpy(y))
    ref.backward()
    np.testing.assert_allclose(logits, out.detach().numpy(), atol=1e-12)
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    grads = {name: g for name, _, g in net.parameters()}
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[".".join(name.split(".")[-2:])], p.grad.numpy(), atol=1e-12, err_msg=name)


def test_only_the_first_layer_may_skip_its_input_gradient() -> None:
    net = lenet5(seed=0, dtype=np.float64)
    net.layers["conv2"].needs_input_grad = False
    net.forward(np.zeros((2, 1, 28, 28)))
    with pytest.raises(RuntimeError, match="conv2 computed no input gradient"):
        net.backward(np.ones((2, 10)))


def test_load_state_dict_takes_a_torch_state_and_checks_it() -> None:
    model = create_model("lenet5")
    net = lenet5(seed=3)
    net.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(net.state_dict()["fc2.bias"], model.classifier.fc2.bias.detach().numpy())
    with pytest.raises(ValueError, match="no 'conv1.weight'"):
        net.load_state_dict({})
    bad = net.state_dict() | {"conv1.weight": np.zeros((6, 1, 3, 3))}
    with pytest.raises(ValueError, match="conv1.weight has shape"):
        net.load_state_dict(bad)


def test_sgd_momentum_matches_torch() -> None:
    rng = np.random.default_rng(0)
    net = lenet5(seed=2, dtype=np.float64)
    model = torch_twin(net)
    opt, ref_opt = SGD(net, lr=0.1, momentum=0.9), torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = SoftmaxCrossEntropy()
    for _ in range(3):
        x, y = rng.random((4, 1, 28, 28)), rng.integers(0, 10, 4)
        loss_fn(net.forward(x), y)
        net.backward(loss_fn.backward())
        opt.step()
        ref_opt.zero_grad()
        F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        ref_opt.step()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(net.state_dict()[".".join(name.split(".")[-2:])], p.detach().numpy(), atol=1e-10)


def test_batch_order_is_a_seeded_permutation() -> None:
    a = batch_order(100, 32, seed=0, epoch=0)
    assert a.shape == (3, 32) and len(np.unique(a)) == 96  # the ragged last 4 are dropped
    np.testing.assert_array_equal(a, batch_order(100, 32, seed=0, epoch=0))
    assert not np.array_equal(a, batch_order(100, 32, seed=0, epoch=1))


def mnist_subset(split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        ds = load_dataset("mnist", split).subset(n, seed=0)
    except DataNotFoundError as e:  # pragma: no cover - only where MNIST cannot be had; a bad copy fails
        pytest.skip(f"MNIST is not available: {e}")
    x, y = ds.tensors()
    return x.numpy(), y.numpy()


@pytest.mark.slow
def test_numpy_lenet_learns_mnist() -> None:
    train, test = mnist_subset("train", 2000), mnist_subset("test", 1000)
    net = lenet5(seed=0)
    before = evaluate(net, *test)["acc"]
    fit = train_numpy_lenet(train, test, NumpyTrainConfig(epochs=6, batch_size=32, lr=0.05), net=net)  # 372 steps
    assert len(fit.history) == 6 and len(fit.step_loss) == 6 * 62
    assert fit.final["test_acc"] > 0.85 > 0.2 > before  # chance is 0.1
    assert fit.final["train_loss"] < fit.history[0]["train_loss"]
    assert fit.net is net and net.state_dict()["conv1.weight"].dtype == np.float32
