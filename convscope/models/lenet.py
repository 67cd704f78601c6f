"""LeNet-5 (LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998), in two forms.

- `lenet5`: the modern variant every tutorial trains on 28×28 MNIST: conv 5×5 (pad 2) → 6 maps,
  pool 2, conv 5×5 → 16 maps, pool 2, then fully connected 400 → 120 → 84 → classes (61,706
  parameters). Its activation and pooling are options, for the RECOS and CReLU experiments.
- `lenet5-classic`: the paper's network on 32×32 input (docs/REFERENCE.md §2): scaled tanh everywhere,
  trainable subsampling S2/S4, the partial C3 connection table (1,516 parameters), C5 and F6, and
  an optional RBF output with fixed ±1 prototypes. Layers are named after the paper (`features.c3`).

Following the paper's general unit ("a weighted sum ... passed through a sigmoid squashing
function", §II.B, with the squashing function of Appendix A), the classic net applies the scaled
tanh after every layer up to F6, including S2/S4 (the "sigmoid" of their description).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import unknown_name
from convscope.models._common import ConvNet, named_sequential
from convscope.models.activations import ScaledTanh, channel_multiplier, make_activation
from convscope.models.registry import register_model

# Which S2 maps feed each C3 map (docs/REFERENCE.md §2, the paper's Table I): 6·3 + 9·4 + 6 = 60 connections.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip

# Stylised 7×12 digit bitmaps for the RBF prototypes ('#' = +1, '.' = −1), digits 0–9 side by side.
# The paper's own bitmaps (its Fig. 3) are not reproduced; these are drawn in the same spirit.
DIGIT_BITMAPS: tuple[str, ...] = (
    "....... ....... ....... ....... ....... ....... ....... ....... ....... .......",
    "..###.. ...##.. .#####. .#####. ....##. ####### ..####. ####### .#####. .#####.",
    ".##.##. ..###.. ##...## ##...## ...###. ##..... .##.... .....## ##...## ##...##",
    "##...## .####.. .....## .....## ..####. ##..... ##..... ....##. ##...## ##...##",
    "##...## ...##.. ....##. .....## .##.##. ######. ######. ...##.. ##...## ##...##",
    "##...## ...##.. ...##.. ..####. ##..##. .....## ##...## ...##.. .#####. .######",
    "##...## ...##.. ..##... .....## ####### .....## ##...## ..##... ##...## .....##",
    "##...## ...##.. .##.... .....## ....##. .....## ##...## ..##... ##...## .....##",
    ".##.##. ...##.. ##..... ##...## ....##. ##...## ##...## ..##... ##...## ....##.",
    "..###.. .###### ####### .#####. ....##. .#####. .#####. ..##... .#####. .####..",
    "....... ....... ....... ....... ....... ....... ....... ....... ....... .......",
    "....... ....... ....... ....... ....... ....... ....... ....... ....... .......",
)


def digit_prototypes(num_classes: int = 10) -> torch.Tensor:
    """The fixed ±1 RBF prototypes, shape `(num_classes, 84)`.

    Classes 0–9 get the digit bitmaps of `DIGIT_BITMAPS` (12 rows × 7 columns, row-major); any
    further class gets a deterministic pseudo-random ±1 bitmap (seed 0).
    """
    rows = [row.split(" ") for row in DIGIT_BITMAPS]  # 12 rows × 10 glyphs of 7 characters
    glyphs = ["".join(row[d] for row in rows) for d in range(10)]
    protos = torch.tensor([[1.0 if ch == "#" else -1.0 for ch in g] for g in glyphs])  # (10, 84)
    if num_classes > 10:
        gen = torch.Generator().manual_seed(0)
        extra = torch.randint(0, 2, (num_classes - 10, 84), generator=gen).float() * 2 - 1
        protos = torch.cat((protos, extra))
    return protos[:num_classes].clone()


class Subsampling(nn.Module):
    """LeNet's S2/S4: sum of each 2×2 block, times a trainable per-map coefficient, plus a per-map bias.

    Initialised uniform ±2.4/4 (the paper's ±2.4/fan-in; each unit has 4 inputs).
    """

    kernel_size = 2
    stride = 2

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.coefficient = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        nn.init.uniform_(self.coefficient, -2.4 / 4, 2.4 / 4)
        nn.init.uniform_(self.bias, -2.4 / 4, 2.4 / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block_sum = F.avg_pool2d(x, 2) * 4  # (B, C, H/2, W/2)
        return block_sum * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def summary_counts(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, int]:
        """LeCun's counts: 2 parameters per map; each output takes 4 inputs plus the bias."""
        out_elements = out_shape[0] * out_shape[1] * out_shape[2]
        return 2 * self.coefficient.numel(), out_elements * (4 + 1)


class PartialConv2d(nn.Module):
    """A convolution in which output map `o` sees only the input maps `table[o]` (LeNet's C3).

    Only real connections are parameters: `weight` holds one `k×k` kernel per (output, input) pair
    of the table, `(connections, k, k)`; forward scatters them into a dense, mostly zero kernel.
    Initialised uniform ±2.4/fan-in, the fan-in of each output map being `len(table[o])·k·k`.
    """

    stride = 1
    padding = 0
    dilation = 1
    summary_counted = True  # a conv layer for the layer-counting rule

    def __init__(self, table: Sequence[Sequence[int]], in_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, len(table), kernel_size
        pairs = [(o, i) for o, inputs in enumerate(table) for i in inputs]
        self.register_buffer("out_index", torch.tensor([o for o, _ in pairs]))
        self.register_buffer("in_index", torch.tensor([i for _, i in pairs]))
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(len(table)))
        fan_in = torch.tensor([len(inputs) * kernel_size**2 for inputs in table], dtype=torch.float)
        with torch.no_grad():  # uniform in ±1, then scaled per output map
            nn.init.uniform_(self.weight, -1, 1).mul_((2.4 / fan_in)[self.out_index].view(-1, 1, 1))
            nn.init.uniform_(self.bias, -1, 1).mul_(2.4 / fan_in)

    @property
    def mask(self) -> torch.Tensor:
        """The connection table as a boolean `(out_channels, in_channels)` matrix."""
        mask = torch.zeros(self.out_channels, self.in_channels, dtype=torch.bool, device=self.weight.device)
        mask[self.out_index, self.in_index] = True
        return mask

    def dense_weight(self) -> torch.Tensor:
        """The full `(out, in, k, k)` kernel, zero where the table has no connection."""
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return dense.index_put((self.out_index, self.in_index), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def summary_counts(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, int]:
        """Parameters, and LeCun's connections: every output position repeats every parameter once."""
        params = self.weight.numel() + self.bias.numel()
        return params, out_shape[1] * out_shape[2] * params


class RBFOutput(nn.Module):
    """LeNet-5's output layer: Euclidean RBF units with fixed ±1 prototypes (buffers, not parameters).

    Returns negative squared distances, `-‖x − p_k‖²`, so they act as logits (largest = closest).
    """

    summary_counted = True  # a fully connected layer (with fixed weights) for the layer-counting rule

    def __init__(self, in_features: int = 84, num_classes: int = 10) -> None:
        super().__init__()
        if in_features != 84:
            raise ValueError(f"RBFOutput prototypes are 7×12 = 84 bitmaps, got in_features={in_features}")
        self.register_buffer("prototypes", digit_prototypes(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = x.unsqueeze(1) - self.prototypes.unsqueeze(0)  # (B, K, 84)
        return -(diff**2).sum(dim=-1)  # (B, K)

    def summary_counts(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, int]:
        """No parameters; each output unit connects to all 84 inputs."""
        return 0, self.prototypes.numel()


def _make_pool(pool: str) -> nn.Module:
    if pool == "max":
        return nn.MaxPool2d(2)
    if pool == "avg":
        return nn.AvgPool2d(2)
    raise unknown_name("pool", pool, ["max", "avg"])


class LeNet5(ConvNet):
    """The modern LeNet-5 for 28×28 inputs.

    Args:
        in_channels: input channels.
        num_classes: output classes.
        activation: the activation after every layer but the last, a name for `make_activation`
            ("relu", "tanh", "none", "leaky", "avr", "crelu", ...). CReLU doubles the inputs of the
            layer after it; "none" makes the whole network linear (with `pool="avg"`).
        first_activation: overrides the activation after conv1 only (e.g. "crelu").
        pool: "max" or "avg".

    The activation modules are named `relu1`…`relu4` whichever activation they are, so layer
    addresses stay the same across variants.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        activation: str = "relu",
        first_activation: str | None = None,
        pool: str = "max",
    ) -> None:
        acts = [make_activation(first_activation or activation)] + [make_activation(activation) for _ in range(3)]
        m = [channel_multiplier(a) for a in acts]  # channels each activation puts out per input channel
        features = named_sequential(
            ("conv1", nn.Conv2d(in_channels, 6, 5, padding=2)),
            ("relu1", acts[0]),
            ("pool1", _make_pool(pool)),
            ("conv2", nn.Conv2d(6 * m[0], 16, 5)),
            ("relu2", acts[1]),
            ("pool2", _make_pool(pool)),
        )
        classifier = named_sequential(
            ("flatten", nn.Flatten()),  # (B, 16·m, 5, 5) -> (B, 400·m)
            ("fc1", nn.Linear(16 * m[1] * 5 * 5, 120)),
            ("relu3", acts[2]),
            ("fc2", nn.Linear(120 * m[2], 84)),
            ("relu4", acts[3]),
            ("fc3", nn.Linear(84 * m[3], num_classes)),
        )
        super().__init__(features, classifier, (in_channels, 28, 28), fixed_size=True)


class LeCunInput(nn.Module):
    """The paper's input convention: pad 28×28 digits by `pad` and map [0, 1] to [−0.1, 1.175].

    Zero padding in [0, 1] becomes the background −0.1 after the affine map, so the border of the
    32×32 field is background, as in the paper ("the mean input is roughly 0, the variance roughly 1").
    """

    def __init__(self, pad: int = 2, low: float = -0.1, high: float = 1.175) -> None:
        super().__init__()
        self.pad, self.low, self.high = pad, low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad,) * 4) if self.pad else x  # (B, C, H+2p, W+2p)
        return x * (self.high - self.low) + self.low

    def extra_repr(self) -> str:
        return f"pad={self.pad}, range=({self.low}, {self.high})"


class LeNet5Classic(ConvNet):
    """LeNet-5 as in the paper (docs/REFERENCE.md §2): a 32×32 input field, 28×28 digits padded by 2.

    Args:
        in_channels: input channels (1 in the paper).
        num_classes: output classes.
        rbf: use the RBF output with fixed prototypes (logits = negative squared distances);
            otherwise a linear layer 84 → classes.
        pad: padding the first layer (`features.input`) adds around inputs in [0, 1] before mapping them
            to the paper's [−0.1, 1.175]; the default 2 takes 28×28 MNIST digits, 0 takes 32×32 fields.

    All weights and biases are initialised uniform ±2.4/fan-in, as in the paper.
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, rbf: bool = False, pad: int = 2) -> None:
        features = named_sequential(
            ("input", LeCunInput(pad)),  # 32×32 field
            ("c1", nn.Conv2d(in_channels, 6, 5)),  # 6@28×28
            ("tanh1", ScaledTanh()),
            ("s2", Subsampling(6)),  # 6@14×14
            ("tanh2", ScaledTanh()),
            ("c3", PartialConv2d(C3_TABLE, 6, 5)),  # 16@10×10
            ("tanh3", ScaledTanh()),
            ("s4", Subsampling(16)),  # 16@5×5
            ("tanh4", ScaledTanh()),
            ("c5", nn.Conv2d(16, 120, 5)),  # 120@1×1
            ("tanh5", ScaledTanh()),
        )
        classifier = named_sequential(
            ("flatten", nn.Flatten()),  # (B, 120, 1, 1) -> (B, 120)
            ("f6", nn.Linear(120, 84)),
            ("tanh6", ScaledTanh()),
            ("output", RBFOutput(84, num_classes) if rbf else nn.Linear(84, num_classes)),
        )
        super().__init__(features, classifier, (in_channels, 32 - 2 * pad, 32 - 2 * pad), fixed_size=True)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                bound = 2.4 / module.weight[0].numel()  # fan-in of one unit
                nn.init.uniform_(module.weight, -bound, bound)
                nn.init.uniform_(module.bias, -bound, bound)


@register_model("lenet5")
def lenet5(**kwargs: object) -> LeNet5:
    """Modern LeNet-5 (28×28, ReLU, max pooling by default); see `LeNet5` for the options."""
    return LeNet5(**kwargs)


@register_model("lenet5-classic")
def lenet5_classic(**kwargs: object) -> LeNet5Classic:
    """LeNet-5 as in LeCun et al. (1998), 32×32 input; see `LeNet5Classic` for the options."""
    return LeNet5Classic(**kwargs)
