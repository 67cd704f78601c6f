"""Rendering: the image that maximises an objective, found by Adam with the network's weights fixed.

Erhan, Bengio, Courville and Vincent ("Visualizing Higher-Layer Features of a Deep Network", 2009) follow the
gradient of one unit with respect to the pixels; Olah, Mordvintsev and Schubert ("Feature Visualization", Distill
2017) add a better parameterisation (Fourier space, decorrelated colours: `param`), transformation robustness
(`transforms`) and regularisers (`objectives`). For an objective J and a parameterised image x(θ),

    θ* = argmax_θ Σ_b J_b(model(T(x(θ))), x(θ)),   T a random transformation drawn afresh each step,

by Adam (lr 0.05, Lucid's). `render` runs one optimisation of a batch; `render_channels` renders one image per
channel of a layer, all channels in one batch (image b serves channel c_b), which is much faster than a loop over
channels (benchmarks/featurevis_speed.py) and gives the same images: the images are independent optimisations
(Adam is elementwise; the objective is a sum of per-image terms) that start from their own seeds and see the same
transformations.

The model is left as found (docs/DESIGN.md): eval mode and frozen weights only for the block (`hooks.frozen`),
layer outputs read through `hooks.record(..., detach=False)`, whose hooks are gone on exit; every random draw comes
from `torch.Generator`s seeded by `seed`, so two runs give the same images on the CPU and the global random state
is untouched. The device and dtype are the model's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convscope.errors import UserError
from convscope.hooks import activations, eval_mode, frozen, model_device, model_dtype, record
from convscope.optvis.objectives import Objective, channel
from convscope.optvis.param import Param, image
from convscope.optvis.transforms import Transform, standard

Tensor = torch.Tensor


@dataclass
class Rendering:
    """What an optimisation produced.

    `start_values` and `values` are the objective of each image, `(B,)`, on the start and final images as they are
    (untransformed); `history` holds it at each step on the transformed image that step saw, `(steps, B)`.
    """

    images: Tensor  # (B, C, H, W), detached, on the model's device, in its dtype
    start_images: Tensor
    values: np.ndarray  # (B,)
    start_values: np.ndarray  # (B,)
    history: np.ndarray  # (steps, B)

    @property
    def final(self) -> float:
        """The objective reached, summed over the batch."""
        return float(self.values.sum())

    @property
    def start(self) -> float:
        """The objective at the start, summed over the batch."""
        return float(self.start_values.sum())


def _check_positive(name: str, value: float, whole: bool, example: str) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) if whole else isinstance(value, int | float)
    if not ok or value <= 0:
        raise UserError(f"{name} must be a positive {'whole ' if whole else ''}number, got {value!r}: use e.g. "
                        f"{example}.")


def objective_values(model: nn.Module, objective: Objective, images: Tensor) -> np.ndarray:
    """The objective of each of `images` as they are, `(B,)`, in eval mode, without gradients."""
    with torch.no_grad(), eval_mode(model), record(model, list(objective.layers)) as acts:
        x = images.to(model_device(model), model_dtype(model))
        model(x)
        return objective(acts, x).detach().cpu().numpy()


def render(model: nn.Module, objective: Objective, param: Param, transforms: Transform | None = None,
           steps: int = 128, lr: float = 0.05, seed: int = 0) -> Rendering:
    """Maximise `objective` over the image of `param` by Adam, the model's weights fixed.

    Args:
        model: any module; left exactly as found.
        objective: what to maximise, one value per image, e.g. `channel("features.conv1", 0)`.
        param: `(params, image_fn)` on the model's device, e.g. `param.image((1, 1, 28, 28))`.
        transforms: applied to the image before each forward pass, e.g. `transforms.standard(28, 28)`.
        steps: Adam steps (Lucid: 512, or 128 for a quick look).
        lr: Adam's learning rate on the parameters.
        seed: seed of the transformations' random draws.

    Returns:
        The `Rendering`.

    Raises:
        UserError: `steps` or `lr` is not positive, or the objective reads a layer the model does not have.

    Example:
        >>> vis = render(model, channel("features.conv1", 0), image((1, 1, 28, 28)), standard(28, 28))
        >>> vis.final > vis.start
        True
    """
    _check_positive("steps", steps, True, "128 (Lucid's quick setting) or 512")
    _check_positive("lr", lr, False, "0.05 (Lucid's)")
    params, image_fn = param
    transform = transforms or (lambda x, _gen: x)
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(params, lr=lr)
    history = []
    with frozen(model), record(model, list(objective.layers), detach=False) as acts:

        def value(x: Tensor) -> Tensor:
            model(x)
            return objective(acts, x).detach()

        with torch.no_grad():
            start_images = image_fn().detach().clone()
            start_values = value(start_images)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            x = image_fn()
            model(transform(x, gen))
            v = objective(acts, x)  # (B,)
            (-v.sum()).backward()  # ascent
            optimizer.step()
            history.append(v.detach())
        with torch.no_grad():
            images = image_fn().detach().clone()
            values = value(images)
    return Rendering(images=images, start_images=start_images, values=values.cpu().numpy(),
                     start_values=start_values.cpu().numpy(), history=torch.stack(history).cpu().numpy())


def layer_channels(model: nn.Module, layer: str, input_shape: Sequence[int]) -> int:
    """How many channels `layer` has: the second dimension of its output for one zero image."""
    x = torch.zeros(1, *input_shape, device=model_device(model), dtype=model_dtype(model))
    return activations(model, x, [layer])[layer].shape[1]


def render_channels(model: nn.Module, layer: str, channels: Sequence[int] | None = None,
                    unit: Callable[..., Objective] = channel, input_shape: Sequence[int] | None = None,
                    fft_space: bool = True, transforms: Transform | None = None, regulariser: Objective | None = None,
                    steps: int = 128, lr: float = 0.05, seed: int = 0) -> Rendering:
    """One image per channel of `layer`, all rendered together in one batch: image b maximises `channels[b]`.

    Args:
        model: the network (weights fixed, left as found).
        layer: dotted name of the layer, e.g. "features.conv2".
        channels: which channels (default all), in the order of the images.
        unit: what of channel c the image maximises: `channel` (its mean over positions) or `neuron` (its centre).
        input_shape: `(C, H, W)`; defaults to `model.input_shape` (zoo models have one; give it for others).
        fft_space: Fourier parameterisation (and decorrelated colours for RGB); False for free pixels.
        transforms: default `transforms.standard(H, W)`, `transforms.compose()` for none; end with
            `transforms.normalize(mean, std)` for a model that takes normalised images.
        regulariser: subtracted from each image's objective, e.g. `1e-3 * total_variation()`.
        steps, lr: as in `render`.
        seed: the image of channel c starts from seed `seed + c`; the transformations draw from `seed`. A channel
            rendered alone or with others gets the same image (to rounding).

    Returns:
        The `Rendering`, images `(len(channels), C, H, W)` in (0, 1).

    Raises:
        UserError: an unknown layer, a channel out of range, no input shape, or a non-positive `steps` or `lr`.

    Example:
        >>> vis = render_channels(model, "features.conv2", steps=128)
        >>> vis.images.shape
        torch.Size([16, 1, 28, 28])
    """
    _check_positive("steps", steps, True, "128 (Lucid's quick setting) or 512")
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is None:
        raise UserError(f"{type(model).__name__} has no input_shape attribute: pass input_shape=(C, H, W), the "
                        "shape of one input image.")
    shape = tuple(shape)
    n = layer_channels(model, layer, shape)
    channels = list(range(n)) if channels is None else list(channels)
    bad = [c for c in channels if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n]
    if bad or not channels:
        what = f"channel {bad[0]!r} is out of range" if bad else "no channels were given"
        raise UserError(f"Layer {layer!r} has {n} channels and {what}: choose channels among 0..{n - 1}.")
    objective = unit(layer, channels)
    if regulariser is not None:
        objective = objective - regulariser
    param = image((len(channels), *shape), fft_space=fft_space, seed=[seed + c for c in channels],
                  device=model_device(model), dtype=model_dtype(model))
    return render(model, objective, param, transforms or standard(*shape[1:]), steps, lr, seed)


__all__ = ["Rendering", "objective_values", "layer_channels", "render", "render_channels"]
