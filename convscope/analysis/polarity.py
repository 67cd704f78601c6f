"""Polarity in the RECOS model: why a CNN trained on dark-on-light digits fails on light-on-dark ones.

Kuo, "Understanding convolutional neural networks with a mathematical model", JVCIR 41, 2016
(arXiv 1609.04112; docs/REFERENCE.md §3) reads each first-layer filter as an *anchor vector* and each
unit as a REctified COrrelation on a Sphere: the correlation of an input patch with the anchor,
rectified by ReLU. Grey-level inversion x → 1 − x flips the sign of those correlations, and ReLU
throws away the flipped half: the trained LeNet-5 drops from ~99 % to ~37 % on inverted digits.
The article then negates every conv1 weight and reports the two accuracies swapped.

Negating the weights alone is not an exact swap. For a conv with weights W, bias b and zero padding,
inside the image (every sum over one filter's window):

    conv(−W, b) on 1 − x  =  −ΣW + W·x + b          (one ΣW per filter: the sum of its weights)

which differs from the original W·x + b by −ΣW, and on the border the zero padding of the inverted
image is 0 where the original's padding (0) inverted would be 1. `exact_polarity_swap` fixes both:

    bias b′ = b + c·ΣW         and        pad the input with c instead of 0        (c = 1, the peak)

so that conv(pad_c(c − x), −W) + b′ = −c·ΣW + conv(pad_0(x), W) + b + c·ΣW = conv(pad_0(x), W) + b
exactly, for every position; the rest of the network is unchanged, so swapped(c − x) = model(x)
image by image (and swapped(x) = model(c − x)). Both functions work on a deep copy of the model.

`patch_correlations` measures the correlations themselves: every input patch (`unfold`) against
every unit anchor a_k = W_k / ‖W_k‖, divided by the patch norm, i.e. a cosine in [−1, 1]. With
`centered=True` the patch mean is removed first, and since (c − p) − mean(c − p) = −(p − mean p),
the centred correlation of an inverted patch is exactly minus the original one. Raw (uncentred)
correlations obey ‖c − p‖·corr(c − p) = c·Σa_k − ‖p‖·corr(p) instead.

Example:
    >>> swapped = exact_polarity_swap(model)                       # a copy; `model` is untouched
    >>> torch.allclose(swapped(1 - x), model(x), atol=1e-4)
    True
    >>> corr = patch_correlations(model.features.conv1, x)          # (B, 24·24, 6), NaN on flat patches
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import UserError
from convscope.hooks import conv_layers, eval_mode, get_layer


class PolaritySwappedConv(nn.Module):
    """A conv that on `peak − x` computes exactly what `conv` computes on `x` (zero padding included).

    Holds −W and b + peak·ΣW, and pads its input with `peak` itself before a padding-free convolution.

    Args:
        conv: the convolution to swap (zero padding mode); it is copied, not kept.
        peak: the inversion constant c of x → c − x (1 for images in [0, 1]).
    """

    def __init__(self, conv: nn.Conv2d, peak: float = 1.0) -> None:
        super().__init__()
        if conv.padding_mode != "zeros":
            raise UserError(f"Only a zero-padded conv can be swapped exactly, this one pads with "
                            f"{conv.padding_mode!r}: swap a conv with padding_mode='zeros'.")
        w = conv.weight.detach()
        b = conv.bias.detach() if conv.bias is not None else w.new_zeros(w.shape[0])
        self.weight = nn.Parameter(-w.clone())
        self.bias = nn.Parameter(b + peak * w.sum(dim=(1, 2, 3)))  # (out,): one ΣW per filter
        self.pad = _explicit_padding(conv)
        self.stride, self.dilation, self.groups, self.peak = conv.stride, conv.dilation, conv.groups, peak

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pad, value=self.peak)  # (B, C, H + top + bottom, W + left + right)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, pad={self.pad} with {self.peak}, stride={self.stride}"


def first_conv(model: nn.Module) -> str:
    """Dotted name of the model's first 2-D convolution (the one that sees the image)."""
    names = [n for n in conv_layers(model) if isinstance(get_layer(model, n), nn.Conv2d)]
    if not names:
        raise UserError("The model has no nn.Conv2d layer whose polarity could be swapped: pass a CNN.")
    return names[0]


def negate_conv(model: nn.Module, name: str | None = None) -> nn.Module:
    """A copy of `model` whose conv `name` (default: the first) has every weight negated, bias unchanged.

    This is the article's experiment; it is *not* an exact swap (see the module docstring).
    """
    net = copy.deepcopy(model)
    conv = get_layer(net, name or first_conv(net))
    with torch.no_grad():
        conv.weight.neg_()
    return net


def exact_polarity_swap(model: nn.Module, name: str | None = None, peak: float = 1.0) -> nn.Module:
    """A copy of `model` with conv `name` replaced by its `PolaritySwappedConv`.

    The conv must be the first operation on the image (nothing before it in the forward pass), as
    conv1 is in LeNet-5; then `swapped(peak − x) == model(x)` up to float rounding.

    Args:
        model: the network; left exactly as it was.
        name: dotted name of the conv; default the first `nn.Conv2d`.
        peak: the inversion constant (1 for images in [0, 1]).
    """
    net = copy.deepcopy(model)
    name = name or first_conv(net)
    conv = get_layer(net, name)
    if not isinstance(conv, nn.Conv2d):
        raise UserError(f"Layer {name!r} is a {type(conv).__name__}, not an nn.Conv2d: name a convolution.")
    parent_name, _, leaf = name.rpartition(".")
    parent = get_layer(net, parent_name) if parent_name else net
    setattr(parent, leaf, PolaritySwappedConv(conv, peak).to(conv.weight.device))
    return net


@torch.no_grad()
def swap_mismatches(model: nn.Module, swapped: nn.Module, x: torch.Tensor, peak: float = 1.0,
                    batch_size: int = 1000, margin: float = 1e-4) -> dict[str, float]:
    """How far `swapped` is from a polarity swap of `model` on the images `x`, in both directions.

    Both networks run in their own dtype, in eval mode (modes restored). A prediction is decided by
    rounding only when its top-two logits lie within `margin`; those images are checked again in
    float64 on copies, so a mismatch counted is a real one, never float rounding.

    Returns:
        mismatches: images where argmax swapped(peak − x) ≠ argmax model(x), plus images where
        argmax swapped(x) ≠ argmax model(peak − x); max_logit_diff: the largest |logit difference|
        in the networks' own dtype; rechecked: how many near ties were checked again in float64.
    """
    device = next(model.parameters()).device
    near_ties: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
    mismatches, diff = 0, 0.0
    with eval_mode(model), eval_mode(swapped):
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device)
            for d, (a, b) in enumerate(((xb, peak - xb), (peak - xb, xb))):  # model(a) against swapped(b)
                ref, out = model(a), swapped(b)  # (batch, classes) each
                diff = max(diff, float((ref - out).abs().max()))
                close = (_top2_margin(ref) < margin) | (_top2_margin(out) < margin)  # (batch,)
                mismatches += int(((ref.argmax(1) != out.argmax(1)) & ~close).sum())
                near_ties[d].append(start + close.nonzero().flatten().cpu())
    nets = [copy.deepcopy(m).double().eval() for m in (model, swapped)]
    rechecked = 0
    for d in range(2):
        idx = torch.cat(near_ties[d])
        if len(idx):
            xb = x[idx].to(device, torch.float64)
            a, b = (xb, peak - xb) if d == 0 else (peak - xb, xb)
            mismatches += int((nets[0](a).argmax(1) != nets[1](b).argmax(1)).sum())
            rechecked += len(idx)
    return {"mismatches": mismatches, "max_logit_diff": diff, "rechecked": rechecked}


def anchor_vectors(weight: torch.Tensor) -> torch.Tensor:
    """The unit anchor vectors of a conv weight (out, in, kh, kw): rows W_k / ‖W_k‖, shape (out, in·kh·kw)."""
    flat = weight.detach().flatten(1)  # (K, D)
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)


@torch.no_grad()
def patch_correlations(conv: nn.Conv2d, x: torch.Tensor, centered: bool = False, padding: int = 0,
                       eps: float = 1e-6) -> torch.Tensor:
    """Cosine of every input patch with every unit anchor of `conv`: the correlations on a sphere.

    Args:
        conv: the convolution whose filters are the anchors (its kernel size, stride and dilation
            define the patches); it is only read.
        x: images (B, C, H, W) on any device.
        centered: remove each patch's mean before the cosine (then inversion flips the sign exactly).
        padding: zero padding of the patches; 0 keeps the interior patches, the ones inversion inverts.
        eps: patches whose (centred) norm is below this have no direction: their entries are NaN.

    Returns:
        (B, L, K) correlations in [−1, 1] (L patch positions, K filters), NaN for flat patches.
    """
    anchors = anchor_vectors(conv.weight).to(x.device, x.dtype)  # (K, D)
    patches = F.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=padding, stride=conv.stride)
    patches = patches.transpose(1, 2)  # (B, D, L) -> (B, L, D)
    if centered:
        patches = patches - patches.mean(dim=-1, keepdim=True)
    norms = patches.norm(dim=-1, keepdim=True)  # (B, L, 1)
    corr = (patches @ anchors.T) / norms.clamp_min(eps)  # (B, L, K)
    corr = corr.clamp(-1.0, 1.0)  # rounding may step just past ±1
    return corr.masked_fill(norms < eps, float("nan"))


@torch.no_grad()
def polarity_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, peak: float = 1.0,
                      batch_size: int = 2000) -> tuple[float, float]:
    """Accuracy of `model` on `x` and on its inversion `peak − x` (eval mode, mode restored)."""
    device = next(model.parameters()).device
    correct = [0, 0]
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
            for i, inp in enumerate((xb, peak - xb)):
                correct[i] += int((model(inp).argmax(1) == yb).sum())
    n = max(len(x), 1)
    return correct[0] / n, correct[1] / n


def _top2_margin(logits: torch.Tensor) -> torch.Tensor:
    """Gap between the largest and second-largest logit of each row, (B,)."""
    top = logits.topk(2, dim=1).values  # (B, 2)
    return top[:, 0] - top[:, 1]


def _explicit_padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """The conv's padding as F.pad's (left, right, top, bottom)."""
    if conv.padding == "valid":
        return (0, 0, 0, 0)
    if conv.padding == "same":  # PyTorch pads the extra pixel on the right/bottom
        (dh, dw), (kh, kw) = conv.dilation, conv.kernel_size
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    ph, pw = conv.padding
    return (pw, pw, ph, ph)


__all__ = ["PolaritySwappedConv", "anchor_vectors", "exact_polarity_swap", "first_conv", "negate_conv",
           "patch_correlations", "polarity_accuracy", "swap_mismatches"]
