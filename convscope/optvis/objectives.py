"""Objectives for feature visualisation: what an image should make the network do, and what it should look like.

Olah, Mordvintsev and Schubert ("Feature Visualization", Distill 2017) optimise an image to maximise a unit of
the network, a channel, a direction in a layer's space or a class logit, minus regularisers of the image; the
pieces add, scale and multiply, as in Lucid/Lucent (`lucent/optvis/objectives.py`). Here every objective returns
one value *per image* of the batch, shape `(B,)`, and rendering maximises their sum. So image b of a batch can
serve its own channel (`channel(layer, [c0, c1, ...])`: image b maximises channel c_b), the value each image
reached is read off directly, and the batch is `B` independent optimisations unless an objective couples them
(`diversity` does, on purpose).

The regularisers are written once for feature visualisation and inversion (Mahendran and Vedaldi, "Understanding
Deep Image Representations by Inverting Them", CVPR 2015, docs/REFERENCE.md §6): the α-norm Σ|x − c|^α, the
total variation Σ((Δx)² + (Δy)²)^(β/2) and a blur penalty (Nguyen et al. 2015, as Lucent's
`blur_input_each_step`). Subtract them: `channel("features.conv2", 3) - 1e-3 * total_variation()`.

Example:
    >>> obj = channel("features.conv2", 3) + 0.5 * class_logit(7) - 1e-3 * total_variation()
    >>> obj.layers
    ('features.conv2', '')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
ObjectiveFn = Callable[[Mapping[str, Tensor], Tensor], Tensor]  # (layer outputs, image (B, C, H, W)) -> (B,)
OUTPUT = ""  # the layer name of the model's own output: `get_layer(model, "")` is the model itself


class Objective:
    """A quantity to maximise, one value per image: `objective(acts, image) -> (B,)`.

    Objectives add, subtract, negate, multiply (image by image) and scale by numbers; the result knows every
    layer it reads. `Objective.sum` adds many without nesting one closure per term.

    Example:
        >>> obj = 2 * channel("features.conv2", 3) * neuron("features.conv1", 0) - l2()
    """

    def __init__(self, fn: ObjectiveFn, layers: Iterable[str] = (), name: str = "") -> None:
        self.fn, self.layers, self.name = fn, tuple(dict.fromkeys(layers)), name

    def __call__(self, acts: Mapping[str, Tensor], image: Tensor) -> Tensor:
        return self.fn(acts, image)

    @staticmethod
    def sum(objectives: Sequence[Objective]) -> Objective:
        """The sum of `objectives`, evaluated in one loop (a chain of `+` nests one call per term)."""
        objectives = list(objectives)
        if not objectives:
            raise ValueError("Objective.sum needs at least one objective")
        return Objective(lambda a, x: torch.stack([o(a, x) for o in objectives]).sum(0),
                         [n for o in objectives for n in o.layers], " + ".join(o.name for o in objectives))

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):
            return Objective(lambda a, x: self(a, x) + other(a, x), self.layers + other.layers,
                             f"{self.name} + {other.name}")
        _number(other, "add")
        return Objective(lambda a, x: self(a, x) + other, self.layers, f"{self.name} + {other:g}")

    def __radd__(self, other: float) -> Objective:  # sum([...]) starts from 0
        return self + other

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    def __rsub__(self, other: float) -> Objective:
        return -self + other

    def __mul__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):  # image by image, as Lucid's product of objectives
            return Objective(lambda a, x: self(a, x) * other(a, x), self.layers + other.layers,
                             f"({self.name})·({other.name})")
        _number(other, "multiply")
        return Objective(lambda a, x: other * self(a, x), self.layers, f"{other:g}·({self.name})")

    __rmul__ = __mul__

    def __truediv__(self, k: float) -> Objective:
        _number(k, "divide")
        return self * (1.0 / k)

    def __repr__(self) -> str:
        return f"Objective({self.name})"


def _number(k: object, verb: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int | float):
        raise TypeError(f"an objective can {verb} an objective or a number, not {type(k).__name__}")


def _only(values: Tensor, batch: int | None) -> Tensor:
    """`values` (B,) with every image but `batch` set to zero (no gradient reaches them); all for None."""
    if batch is None:
        return values
    keep = torch.zeros_like(values)
    keep[batch] = 1
    return values * keep


def _per_image_channels(a: Tensor, n: int | Sequence[int]) -> Tensor:
    """Channel n of every image, or channel n[b] of image b when `n` has one entry per image: `(B, ...)`."""
    if isinstance(n, int):
        return a[:, n]
    if len(n) != len(a):
        raise ValueError(f"{len(n)} channels for a batch of {len(a)} images: give one channel per image")
    return a[torch.arange(len(a), device=a.device), torch.as_tensor(list(n), device=a.device)]


def channel(layer: str, n: int | Sequence[int], batch: int | None = None) -> Objective:
    """Mean of channel `n` of `layer` over positions, per image; with a list, image b takes channel n[b].

    A `(B, C)` layer (fully connected, logits) has one position. `batch` keeps one image only.
    """

    def fn(acts: Mapping[str, Tensor], _image: Tensor) -> Tensor:
        a = _per_image_channels(acts[layer], n)  # (B, H, W) or (B,)
        return _only(a.flatten(1).mean(1) if a.ndim > 1 else a, batch)

    return Objective(fn, [layer], f"channel({layer}, {n})")


def neuron(layer: str, n: int | Sequence[int], x: int | None = None, y: int | None = None,
           batch: int | None = None) -> Objective:
    """Channel `n` of `layer` at one position (default the centre, `(H // 2, W // 2)`), per image: one unit,
    which only its receptive field of the image can change (Erhan et al. 2009). A list `n` works as in `channel`."""

    def fn(acts: Mapping[str, Tensor], _image: Tensor) -> Tensor:
        a = _per_image_channels(acts[layer], n)  # (B, H, W)
        h, w = a.shape[-2:]
        return _only(a[:, h // 2 if y is None else y, w // 2 if x is None else x], batch)

    return Objective(fn, [layer], f"neuron({layer}, {n}, x={x}, y={y})")


def class_logit(n: int | Sequence[int], batch: int | None = None) -> Objective:
    """The model's output `n` (a class logit), per image; a list `n` gives image b class n[b]."""
    obj = channel(OUTPUT, n, batch)
    obj.name = f"class_logit({n})"
    return obj


def direction(layer: str, vector: Tensor, cossim_pow: float = 0.0, batch: int | None = None) -> Objective:
    """The activation of `layer` along `vector` (its length = the layer's channels), averaged over positions.

    Each position's channel vector a gives ⟨a, v⟩/‖v‖, times max(cos(a, v), 0.1)^`cossim_pow` (Lucid's `direction`
    and `_dot_cossim`, which favour activations that point along v over merely large ones). `vector` is `(C,)`, or
    `(B, C)` for one direction per image.
    """

    def fn(acts: Mapping[str, Tensor], _image: Tensor) -> Tensor:
        a = acts[layer]
        a = a.flatten(2) if a.ndim > 2 else a.unsqueeze(-1)  # (B, C, P)
        v = vector.to(a.device, a.dtype)
        v = (v / v.norm(dim=-1, keepdim=True)).expand(len(a), -1).unsqueeze(-1)  # (B, C, 1)
        dot = (a * v).sum(1)  # (B, P)
        if cossim_pow:
            cos = dot / a.norm(dim=1).clamp_min(1e-6)
            dot = dot * cos.clamp_min(0.1) ** cossim_pow
        return _only(dot.mean(1), batch)

    return Objective(fn, [layer], f"direction({layer}, cossim_pow={cossim_pow:g})")


def diversity(layer: str) -> Objective:
    """Dissimilarity of the images' Gram matrices at `layer`: image b gets −Σ_{b′≠b} ⟨G_b, G_b′⟩ / B.

    G_b is image b's channel Gram matrix, normalised to unit Frobenius norm; the sum over the batch is Lucid's and
    Lucent's `diversity`. Add it (scaled, e.g. by 1e2 as Lucid's tutorials do) to push a batch of images apart.
    It couples the images: a batch with it is no longer B independent optimisations.
    """

    def fn(acts: Mapping[str, Tensor], _image: Tensor) -> Tensor:
        a = acts[layer]
        flat = a.flatten(2)  # (B, C, H·W)
        grams = flat @ flat.transpose(1, 2)  # (B, C, C)
        grams = F.normalize(grams.flatten(1), dim=1)  # (B, C·C), unit norm
        sims = grams @ grams.T  # (B, B)
        return -(sims.sum(1) - sims.diagonal()) / len(a)

    return Objective(fn, [layer], f"diversity({layer})")


# ---------------------------------------------------------------- regularisers of the image (subtract them)


def alpha_norm(alpha: float = 2.0, constant: float = 0.0) -> Objective:
    """Σ |x − constant|^α over each image's pixels (Mahendran and Vedaldi 2015's α-norm, α = 6 in their paper)."""
    return Objective(lambda _a, x: (x - constant).abs().pow(alpha).flatten(1).sum(1), [],
                     f"alpha_norm({alpha:g}, {constant:g})")


def l2(constant: float = 0.5) -> Objective:
    """‖x − constant‖₂ of each image (subtract it to keep pixels near mid grey)."""
    return Objective(lambda _a, x: (x - constant).flatten(1).norm(dim=1), [], f"l2({constant:g})")


def total_variation(beta: float = 2.0) -> Objective:
    """Σ ((Δx)² + (Δy)²)^(β/2) over each image (Mahendran and Vedaldi 2015, docs/REFERENCE.md §6)."""

    def fn(_acts: Mapping[str, Tensor], x: Tensor) -> Tensor:
        dx = x[..., :-1, 1:] - x[..., :-1, :-1]  # (B, C, H-1, W-1)
        dy = x[..., 1:, :-1] - x[..., :-1, :-1]
        return (dx**2 + dy**2).pow(beta / 2).flatten(1).sum(1)

    return Objective(fn, [], f"total_variation({beta:g})")


def blur(x: Tensor) -> Tensor:
    """Each channel averaged over its 3×3 neighbourhood, centre 1 and ring ½, normalised at the border
    (Lucent's `_torch_blur`)."""
    c = x.shape[1]
    k = torch.full((3, 3), 0.5, dtype=x.dtype, device=x.device)
    k[1, 1] = 1.0
    k = k.expand(c, 1, 3, 3)  # depthwise: (C, 1, 3, 3)
    return F.conv2d(x, k, padding=1, groups=c) / F.conv2d(torch.ones_like(x), k, padding=1, groups=c)


def blur_penalty() -> Objective:
    """½ Σ (x − blur(x))² per image, the blurred image held fixed: a step on −k·blur_penalty moves x towards
    blur(x) by k, the blurring every step of early feature visualisation (Nguyen et al. 2015)."""
    return Objective(lambda _a, x: 0.5 * (x - blur(x).detach()).pow(2).flatten(1).sum(1), [], "blur_penalty()")


__all__ = ["OUTPUT", "Objective", "alpha_norm", "blur", "blur_penalty", "channel", "class_logit", "diversity",
           "direction", "l2", "neuron", "total_variation"]
