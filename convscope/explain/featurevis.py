"""Feature visualisation by gradient ascent: the input that a unit of the network likes best.

Erhan, Bengio, Courville and Vincent ("Visualizing Higher-Layer Features of a Deep Network", 2009)
start from a random image and, with the weights fixed, follow the gradient of one unit's activation
with respect to the pixels; Simonyan, Vedaldi and Zisserman (2014) do the same for class scores, and
Olah, Mordvintsev and Schubert ("Feature Visualization", Distill 2017, the lucid/lucent libraries)
add transformation robustness (jitter) and regularisers. For a channel c of layer l the ascent solves

    x* = argmax_x  mean_{i,j} a^l_c(x)[i, j]  −  λ_TV·TV(x)  −  λ_2·‖x − ½‖₂,

where a^l_c is the c-th output map of layer l. The pieces compose as in lucent
(`optvis/objectives.py`, `transform.py`, `param/spatial.py`): an `Objective` reads recorded layer
outputs and adds and scales with others; a parameterisation returns `(params, image_fn)`; transforms
are plain functions of the image, chained by `compose`. The device and dtype are the model's.

The user's model is left as it was found: its parameters are frozen only for the ascent (their
`requires_grad` flags are restored), it runs in eval mode (each module's mode is restored), and the
layer outputs are read through `analysis.hooks.record(..., detach=False)`, whose hooks are gone on exit.

Example:
    >>> vis = visualize_channels(model, "features.conv1", steps=128)
    >>> vis.images.shape                                   # one image per channel
    torch.Size([6, 1, 28, 28])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import UserError
from convscope.hooks import activations, eval_mode, model_device, model_dtype, record

Tensor = torch.Tensor
ObjectiveFn = Callable[[Mapping[str, Tensor], Tensor], Tensor]  # (layer outputs, image) -> scalar
Transform = Callable[[Tensor], Tensor]
Param = tuple[list[Tensor], Callable[[], Tensor]]


# ---------------------------------------------------------------- objectives


class Objective:
    """A scalar to maximise, computed from recorded layer outputs and the image.

    Objectives add, subtract, negate and scale by numbers; the result knows every layer it reads.

    Example:
        >>> obj = channel("features.conv2", 3) - 1e-3 * total_variation()
    """

    def __init__(self, fn: ObjectiveFn, layers: Sequence[str] = (), name: str = "") -> None:
        self.fn, self.layers, self.name = fn, tuple(dict.fromkeys(layers)), name

    def __call__(self, acts: Mapping[str, Tensor], image: Tensor) -> Tensor:
        return self.fn(acts, image)

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):
            return Objective(lambda a, x: self(a, x) + other(a, x), self.layers + other.layers,
                             f"{self.name} + {other.name}")
        return Objective(lambda a, x: self(a, x) + other, self.layers, f"{self.name} + {other}")

    def __radd__(self, other: float) -> Objective:  # so that sum([...]) works
        return self + other

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    def __mul__(self, k: float) -> Objective:
        if not isinstance(k, int | float):
            raise TypeError(f"an objective scales by a number, not {type(k).__name__}")
        return Objective(lambda a, x: k * self(a, x), self.layers, f"{k}·({self.name})")

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Objective({self.name})"


def channel(layer: str, n: int, batch: int | None = None) -> Objective:
    """Mean activation of channel `n` of `layer`, over positions and the batch (or of image `batch` only)."""

    def fn(acts: Mapping[str, Tensor], _image: Tensor) -> Tensor:
        a = acts[layer]  # (B, C, H, W) or (B, C)
        a = a[:, n] if batch is None else a[batch, n]
        return a.mean()

    return Objective(fn, [layer], f"channel({layer}, {n}{'' if batch is None else f', batch={batch}'})")


def neuron(layer: str, n: int, x: int | None = None, y: int | None = None, batch: int | None = None) -> Objective:
    """Activation of channel `n` of `layer` at one position (default the centre), summed over the batch or of
    image `batch` only: a single unit, whose receptive field alone the image can change (Erhan et al. 2009)."""

    def fn(acts: Mapping[str, Tensor], _image: Tensor) -> Tensor:
        a = acts[layer]  # (B, C, H, W)
        h, w = a.shape[-2:]
        unit = a[..., n, h // 2 if y is None else y, w // 2 if x is None else x]  # (B,)
        return unit.sum() if batch is None else unit[batch]

    return Objective(fn, [layer], f"neuron({layer}, {n}, x={x}, y={y}{'' if batch is None else f', batch={batch}'})")


def channel_per_image(layer: str, channels: int, unit: Callable[..., Objective] = channel) -> Objective:
    """The sum over c < `channels` of unit(layer, c, batch=c): image c of the batch serves channel c.

    `unit` is `channel` (the channel's mean) or `neuron` (its centre unit).
    """
    return sum((unit(layer, c, batch=c) for c in range(channels)), start=0.0)


def l2(constant: float = 0.5) -> Objective:
    """‖x − constant‖₂ of each image, summed over the batch (subtract it to keep pixels near mid grey)."""
    return Objective(lambda _a, x: ((x - constant) ** 2).flatten(1).sum(1).sqrt().sum(), [], f"l2({constant})")


def total_variation(beta: float = 2.0) -> Objective:
    """Σ ((Δx)² + (Δy)²)^(β/2) over the image (Mahendran & Vedaldi 2015, docs/REFERENCE.md §6); subtract it."""

    def fn(_acts: Mapping[str, Tensor], x: Tensor) -> Tensor:
        dx = x[..., :-1, 1:] - x[..., :-1, :-1]  # (B, C, H-1, W-1)
        dy = x[..., 1:, :-1] - x[..., :-1, :-1]
        return ((dx**2 + dy**2) ** (beta / 2)).sum()

    return Objective(fn, [], f"tv(beta={beta})")


# ---------------------------------------------------------------- parameterisations and transforms


def pixel_image(shape: Sequence[int], device: torch.device | str, sd: float = 1.0, seed: int = 0,
                sigmoid: bool = True, dtype: torch.dtype = torch.float32) -> Param:
    """Free pixels: `(params, image_fn)` with image_fn() of `shape` (B, C, H, W), in `dtype` (the model's).

    With `sigmoid`, the parameters are logits and the image is sigmoid(params), always in (0, 1), as
    the training images were; the start is random, N(0, sd²) logits around mid grey.
    """
    gen = torch.Generator().manual_seed(seed)
    p = (torch.randn(tuple(shape), generator=gen) * sd).to(device, dtype).requires_grad_(True)
    return [p], (lambda: torch.sigmoid(p)) if sigmoid else (lambda: p)


def jitter(d: int, seed: int = 0) -> Transform:
    """Shift the image by a random (dy, dx) in [−d, d]², edges replicated, so its size is kept."""
    gen = torch.Generator().manual_seed(seed)

    def fn(x: Tensor) -> Tensor:
        if d <= 0:
            return x
        dy, dx = (int(v) for v in torch.randint(-d, d + 1, (2,), generator=gen))
        h, w = x.shape[-2:]
        padded = F.pad(x, (d, d, d, d), mode="replicate")  # (B, C, H+2d, W+2d)
        return padded[..., d + dy:d + dy + h, d + dx:d + dx + w]

    return fn


def compose(*transforms: Transform) -> Transform:
    """Apply `transforms` left to right."""

    def fn(x: Tensor) -> Tensor:
        for t in transforms:
            x = t(x)
        return x

    return fn


# ---------------------------------------------------------------- the ascent


@dataclass
class FeatureVis:
    """What an ascent produced: the images, the objective by step, and its value before and after.

    `start` and `final` are the objective on the untransformed start and final images; `history` is
    its value at each step, on the transformed image the step saw.
    """

    images: Tensor  # (B, C, H, W), detached
    start_images: Tensor
    history: np.ndarray  # (steps,)
    start: float
    final: float


def visualize(model: nn.Module, objective: Objective, param: Param, transforms: Sequence[Transform] = (),
              steps: int = 128, lr: float = 0.05) -> FeatureVis:
    """Maximise `objective` over the image of `param` by Adam, the model's weights fixed.

    Args:
        model: any module; left exactly as found (module docstring).
        objective: what to maximise, e.g. `channel("features.conv1", 0)`.
        param: `(params, image_fn)`, e.g. `pixel_image((1, 1, 28, 28), device)`, on the model's device.
        transforms: applied to the image before each forward pass (robustness, e.g. `jitter(1)`).
        steps: Adam steps.
        lr: Adam learning rate on the parameters.

    Returns:
        The `FeatureVis`.

    Example:
        >>> vis = visualize(model, channel("features.conv1", 0), pixel_image((1, 1, 28, 28), "cpu"))
        >>> vis.final > vis.start
        True
    """
    params, image_fn = param
    transform = compose(*transforms)
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    history = []
    try:
        for p, _ in frozen:
            p.requires_grad_(False)  # no gradient for the weights: nothing accumulates in p.grad
        with eval_mode(model), record(model, list(objective.layers), detach=False) as acts:

            def value(x: Tensor) -> Tensor:
                model(x)
                return objective(acts, x)

            with torch.no_grad():
                start_images = image_fn().detach().clone()
                start = float(value(start_images))
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                image = image_fn()
                model(transform(image))
                v = objective(acts, image)
                (-v).backward()  # ascent
                optimizer.step()
                history.append(float(v.detach()))
            with torch.no_grad():
                images = image_fn().detach().clone()
                final = float(value(images))
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
    return FeatureVis(images=images, start_images=start_images, history=np.array(history), start=start,
                      final=final)


def visualize_channels(model: nn.Module, layer: str, unit: Callable[..., Objective] = channel,
                       input_shape: Sequence[int] | None = None, steps: int = 128, lr: float = 0.05,
                       transforms: Sequence[Transform] = (), regulariser: Objective | None = None,
                       seed: int = 0) -> FeatureVis:
    """One ascent per channel of `layer`, run together: image c of the batch maximises channel c.

    Args:
        model: the network (weights fixed, left as found).
        layer: dotted name of the layer, e.g. "features.conv2".
        unit: what of channel c image c maximises: `channel` (its mean over positions) or `neuron`
            (its centre unit).
        input_shape: `(C, H, W)`; defaults to `model.input_shape` (zoo models have one; give it for others).
        steps, lr, transforms: as in `visualize`.
        regulariser: subtracted from the objective, e.g. `1e-3 * total_variation()`.
        seed: seed of the random start images.

    Returns:
        The `FeatureVis` with images `(channels, C, H, W)`, in the model's dtype.

    Raises:
        UserError: no `input_shape` was given and the model has none.
    """
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is None:
        raise UserError(f"{type(model).__name__} has no input_shape attribute: pass input_shape=(C, H, W), the "
                        "shape of one input image.")
    shape = tuple(shape)
    device, dtype = model_device(model), model_dtype(model)
    channels = activations(model, torch.zeros(1, *shape, device=device, dtype=dtype), [layer])[layer].shape[1]
    objective = channel_per_image(layer, channels, unit)
    if regulariser is not None:
        objective = objective - regulariser
    return visualize(model, objective, pixel_image((channels, *shape), device, seed=seed, dtype=dtype), transforms,
                     steps, lr)


def own_channel_activation(model: nn.Module, layer: str, images: Tensor) -> np.ndarray:
    """Mean activation of channel c of `layer` for image c, for every c: `(B,)`, in eval mode, no gradients."""
    a = activations(model, images.to(model_dtype(model)), [layer])[layer]  # (B, C, H, W)
    idx = torch.arange(len(images), device=a.device)
    return a[idx, idx].flatten(1).mean(1).cpu().numpy()


__all__ = ["FeatureVis", "Objective", "channel", "channel_per_image", "compose", "jitter", "l2", "neuron",
           "own_channel_activation", "pixel_image", "total_variation", "visualize", "visualize_channels"]
