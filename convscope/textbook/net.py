"""A network of textbook layers, LeNet-5 built from them, SGD with momentum, and a training loop.

The chapter's error back-propagation (Qiu, *Neural Networks and Deep Learning*, ch. 5; docs/REFERENCE.md
§1) is a loop: the forward pass runs the layers in order, each caching what it needs; the backward
pass runs them in reverse, each turning δ of its output into δ of its input and filling its
gradients on the way. `Sequential` is that loop.

`lenet5` is the same network as `convscope.create_model("lenet5")`: conv 1→6 5×5 (padding 2), ReLU,
max-pool 2, conv 6→16 5×5, ReLU, max-pool 2, fc 400→120→84→10 with ReLU, with the same layer names
and parameter layouts, so `load_state_dict` takes the PyTorch model's `state_dict()` as it is and the
two can start from the same weights. Plain SGD with momentum, in PyTorch's form (v ← μv + g, θ ← θ − ηv).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convscope.textbook.activations import ReLU, SoftmaxCrossEntropy
from convscope.textbook.layers import Conv2d, Flatten, Layer, Linear
from convscope.textbook.pool import MaxPool2d
from convscope.textbook.speed import blas_threads


class Sequential:
    """Named layers run in order; `backward` runs them in reverse.

    Example:
        >>> net = lenet5(seed=0)
        >>> logits = net.forward(np.zeros((8, 1, 28, 28), np.float32))  # (8, 10)
        >>> dx = net.backward(np.ones_like(logits))  # fills every layer's grads
    """

    def __init__(self, layers: list[tuple[str, Layer]]) -> None:
        self.layers = dict(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """δ of the output in, δ of the input out (None when the first layer does not compute it)."""
        names = list(self.layers)
        for i in range(len(names) - 1, -1, -1):
            dy = self.layers[names[i]].backward(dy)
            if dy is None and i > 0:  # only the first layer may skip its input gradient
                raise RuntimeError(f"{names[i]} computed no input gradient, but {names[i - 1]} below it needs one: "
                                   "set its needs_input_grad = True.")
        return dy

    __call__ = forward

    def parameters(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(dotted name, parameter, its gradient) for every parameter, in layer order."""
        for lname, layer in self.layers.items():
            for pname, value in layer.params.items():
                yield f"{lname}.{pname}", value, layer.grads[pname]

    def num_params(self) -> int:
        return sum(p.size for _, p, _ in self.parameters())

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, keyed "layer.param" (e.g. "conv1.weight")."""
        return {name: p.copy() for name, p, _ in self.parameters()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy parameters in from `state`, whose keys end in "layer.param": "conv1.weight" or a
        PyTorch model's "features.conv1.weight" both work. Values may be arrays or CPU tensors.

        Raises:
            ValueError: a parameter of this network is missing from `state` or has another shape.
        """
        by_suffix = {".".join(k.split(".")[-2:]): v for k, v in state.items()}
        for name, p, _ in self.parameters():
            if name not in by_suffix:
                raise ValueError(f"The state has no {name!r}: its keys are {sorted(state)[:8]}...")
            value = np.asarray(by_suffix[name].detach() if hasattr(by_suffix[name], "detach") else by_suffix[name])
            if value.shape != p.shape:
                raise ValueError(f"{name} has shape {p.shape} here and {value.shape} in the state.")
            p[...] = value

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Logits for `x`, computed in batches."""
        return np.concatenate([self.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def lenet5(seed: int = 0, dtype: type = np.float32, num_classes: int = 10) -> Sequential:
    """The modern LeNet-5 of `convscope.create_model("lenet5")`, in NumPy (61,706 parameters).

    Weights and biases start U(±1/√fan-in), PyTorch's default, drawn from `np.random.default_rng(seed)`.
    """
    rng = np.random.default_rng(seed)
    conv1 = Conv2d(1, 6, 5, padding=2, rng=rng, dtype=dtype)  # (N, 6, 28, 28)
    conv1.needs_input_grad = False  # its input is the image: nothing below needs δ
    return Sequential([
        ("conv1", conv1), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),  # (N, 6, 14, 14)
        ("conv2", Conv2d(6, 16, 5, rng=rng, dtype=dtype)), ("relu2", ReLU()), ("pool2", MaxPool2d(2)),  # (N,16,5,5)
        ("flatten", Flatten()),  # (N, 400)
        ("fc1", Linear(400, 120, rng=rng, dtype=dtype)), ("relu3", ReLU()),
        ("fc2", Linear(120, 84, rng=rng, dtype=dtype)), ("relu4", ReLU()),
        ("fc3", Linear(84, num_classes, rng=rng, dtype=dtype)),
    ])


class SGD:
    """Stochastic gradient descent with momentum: v ← μ v + g, θ ← θ − η v (PyTorch's form).

    With μ = 0 it is plain SGD, θ ← θ − η g. The velocities start at zero.
    """

    def __init__(self, net: Sequential, lr: float, momentum: float = 0.0) -> None:
        self.net, self.lr, self.momentum = net, lr, momentum
        self.velocity = {name: np.zeros_like(p) for name, p, _ in net.parameters()}

    def step(self) -> None:
        for name, p, g in self.net.parameters():
            v = self.velocity[name]
            v *= self.momentum
            v += g
            p -= self.lr * v


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Indices of every mini-batch of one epoch, (steps, batch_size): a permutation seeded by (seed,
    epoch), the ragged last batch dropped. Shared with the PyTorch twin so both see the same batches."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    steps = max(n // batch_size, 1)
    return perm[:steps * batch_size].reshape(steps, -1)


def evaluate(net: Sequential, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> dict[str, float]:
    """Mean cross-entropy and accuracy of `net` on (x, y)."""
    logits = net.predict(x, batch_size)
    loss = SoftmaxCrossEntropy()(logits, y)
    return {"loss": loss, "acc": float((logits.argmax(axis=1) == y).mean())}


@dataclass
class NumpyTrainConfig:
    """The recipe: plain SGD with momentum at a constant learning rate.

    `threads` sets OpenBLAS's thread count while training (None leaves it alone): LeNet-5's matrix
    products are too small to gain from more than one, and spinning helper threads slow a shared CPU.
    """

    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    seed: int = 0
    threads: int | None = 1


@dataclass
class NumpyFit:
    """What `train_numpy_lenet` returns: the trained net, per-epoch rows and per-step losses."""

    net: Sequential
    history: list[dict[str, float]] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    train_seconds: float = 0.0  # wall clock, evaluation excluded
    train_cpu_seconds: float = 0.0  # CPU time of this process over the same spans

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


StepCallback = Callable[[int, int, float], None]  # (step, total steps, loss)


def train_numpy_lenet(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                      cfg: NumpyTrainConfig, net: Sequential | None = None,
                      on_step: StepCallback | None = None) -> NumpyFit:
    """Train the NumPy LeNet-5 (or `net`) with SGD + momentum, evaluating on `test` after each epoch.

    Args:
        train: images (N, 1, 28, 28) float32 in [0, 1] and int labels (N,).
        test: the same for evaluation (not timed).
        cfg: epochs, batch size, learning rate, momentum, seed (initial weights and batch order).
        net: a network to train instead of a fresh `lenet5(cfg.seed)` (e.g. with copied weights).
        on_step: called after every step with (step, total steps, loss), e.g. for a progress bar.

    Example:
        >>> fit = train_numpy_lenet((x_train, y_train), (x_test, y_test), NumpyTrainConfig(epochs=1))
        >>> fit.final["test_acc"]
    """
    net = net if net is not None else lenet5(cfg.seed, dtype=train[0].dtype.type)
    result = NumpyFit(net)
    with blas_threads(cfg.threads) if cfg.threads else nullcontext():
        _train(net, result, train, test, cfg, on_step)
    return result


def _train(net: Sequential, result: NumpyFit, train: tuple[np.ndarray, np.ndarray],
           test: tuple[np.ndarray, np.ndarray], cfg: NumpyTrainConfig, on_step: StepCallback | None) -> None:
    x_train, y_train = train
    opt, loss_fn = SGD(net, cfg.lr, cfg.momentum), SoftmaxCrossEntropy()
    steps_per_epoch = max(len(x_train) // cfg.batch_size, 1)
    for epoch in range(cfg.epochs):
        t0, c0, losses, correct = time.perf_counter(), time.process_time(), [], 0
        for i, idx in enumerate(batch_order(len(x_train), cfg.batch_size, cfg.seed, epoch)):
            logits = net.forward(x_train[idx])  # (B, 10)
            losses.append(loss_fn(logits, y_train[idx]))
            net.backward(loss_fn.backward())
            opt.step()
            correct += int((logits.argmax(axis=1) == y_train[idx]).sum())
            if on_step is not None:
                on_step(epoch * steps_per_epoch + i + 1, cfg.epochs * steps_per_epoch, losses[-1])
        seconds = time.perf_counter() - t0
        result.train_seconds += seconds
        result.train_cpu_seconds += time.process_time() - c0
        result.step_loss.extend(losses)
        test_metrics = evaluate(net, *test)
        result.history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                               "train_acc": correct / (len(losses) * cfg.batch_size),
                               "test_loss": test_metrics["loss"], "test_acc": test_metrics["acc"],
                               "seconds": seconds})
