"""LeNet-5: the paper's layers (docs/REFERENCE.md §2) and the modern variant's options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.models import create_model
from convscope.models.activations import AVR, CReLU, ScaledTanh
from convscope.models.lenet import C3_TABLE, PartialConv2d, RBFOutput, Subsampling, digit_prototypes


def own_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_classic_layer_parameters_match_the_paper() -> None:
    f = create_model("lenet5-classic").features
    c = create_model("lenet5-classic").classifier
    counts = {name: own_params(layer) for name, layer in [("C1", f.c1), ("S2", f.s2), ("C3", f.c3), ("S4", f.s4),
                                                          ("C5", f.c5), ("F6", c.f6)]}  # fmt: skip
    assert counts == {"C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48_120, "F6": 10_164}
    assert 6 * 76 + 9 * 101 + 151 == 1516  # the paper's own decomposition


def test_c3_connection_table() -> None:
    c3 = create_model("lenet5-classic").features.c3
    assert isinstance(c3, PartialConv2d)
    mask = c3.mask
    assert mask.shape == (16, 6) and int(mask.sum()) == 60
    assert [sorted(torch.nonzero(mask[o]).flatten().tolist()) for o in range(16)] == [sorted(t) for t in C3_TABLE]
    assert mask.sum(dim=1).tolist() == [3] * 6 + [4] * 9 + [6]
    dense = c3.dense_weight()
    assert (dense[~mask] == 0).all()


def test_c3_matches_one_conv_per_output_map() -> None:
    torch.manual_seed(0)
    c3 = PartialConv2d(C3_TABLE, 6, 5).double()
    x = torch.randn(2, 6, 14, 14, dtype=torch.float64)
    expected = []
    for o, inputs in enumerate(C3_TABLE):  # the oracle: a dense conv over the listed maps only
        kernels = torch.stack([c3.weight[j] for j in range(len(c3.out_index)) if c3.out_index[j] == o])
        in_order = [int(c3.in_index[j]) for j in range(len(c3.out_index)) if c3.out_index[j] == o]
        assert sorted(in_order) == sorted(inputs)
        expected.append(F.conv2d(x[:, in_order], kernels.unsqueeze(0), c3.bias[o : o + 1]))
    torch.testing.assert_close(c3(x), torch.cat(expected, dim=1))
    assert torch.autograd.gradcheck(c3, (x[:1, :, :6, :6].clone().requires_grad_(),))


def test_subsampling_is_block_sum_times_coefficient_plus_bias() -> None:
    s2 = Subsampling(2)
    with torch.no_grad():
        s2.coefficient.copy_(torch.tensor([2.0, -1.0]))
        s2.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.arange(32.0).view(1, 2, 4, 4)
    block_sums = torch.tensor([[[10.0, 18.0], [42.0, 50.0]], [[74.0, 82.0], [106.0, 114.0]]])
    expected = block_sums * torch.tensor([2.0, -1.0]).view(2, 1, 1) + torch.tensor([0.5, 0.0]).view(2, 1, 1)
    torch.testing.assert_close(s2(x), expected.unsqueeze(0))


def test_classic_init_is_uniform_2_4_over_fan_in() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5-classic")
    f, c = model.features, model.classifier
    for layer, fan_in in [(f.c1, 25), (f.c5, 400), (c.f6, 120), (c.output, 84), (f.s2, 4), (f.s4, 4)]:
        for p in layer.parameters():
            assert p.abs().max() <= 2.4 / fan_in
    fan_c3 = torch.tensor([len(t) * 25 for t in C3_TABLE], dtype=torch.float)
    assert (f.c3.weight.abs().amax(dim=(1, 2)) <= 2.4 / fan_c3[f.c3.out_index]).all()
    assert all(isinstance(m, ScaledTanh) for n, m in f.named_children() if n.startswith("tanh"))


def test_rbf_output_prototypes_are_fixed_buffers() -> None:
    model = create_model("lenet5-classic", rbf=True)
    out = model.classifier.output
    assert isinstance(out, RBFOutput)
    assert not list(out.parameters()) and out.prototypes.shape == (10, 84)
    assert set(out.prototypes.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(p.tolist()) for p in out.prototypes}) == 10  # ten distinct bitmaps
    logits = out(out.prototypes)  # each prototype is closest to itself, at distance 0
    assert logits.argmax(dim=1).tolist() == list(range(10))
    torch.testing.assert_close(logits.diagonal(), torch.zeros(10))
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)  # MNIST digits, padded to the 32×32 field
    assert digit_prototypes(12).shape == (12, 84)
    torch.testing.assert_close(digit_prototypes(12), digit_prototypes(12))


def test_digit_one_bitmap() -> None:
    one = digit_prototypes()[1].view(12, 7)  # 12 rows × 7 columns
    assert one[4].tolist() == [-1, -1, -1, 1, 1, -1, -1]


@pytest.mark.parametrize("activation", ["relu", "tanh", "none", "leaky", "avr", "crelu"])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_lenet5_options(activation: str, pool: str) -> None:
    model = create_model("lenet5", activation=activation, pool=pool)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    pool_type = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
    assert isinstance(model.features.pool1, pool_type) and isinstance(model.features.pool2, pool_type)


def test_lenet5_crelu_doubles_next_inputs() -> None:
    model = create_model("lenet5", activation="crelu")
    assert model.features.conv2.in_channels == 12
    assert [model.classifier.get_submodule(n).in_features for n in ("fc1", "fc2", "fc3")] == [800, 240, 168]
    first = create_model("lenet5", first_activation="crelu")
    assert isinstance(first.features.relu1, CReLU) and isinstance(first.features.relu2, nn.ReLU)
    assert first.features.conv2.in_channels == 12 and first.classifier.fc1.in_features == 400
    assert isinstance(create_model("lenet5", activation="avr").features.relu1, AVR)


def test_lenet5_without_activations_is_affine() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", activation="none", pool="avg").double()
    x, y = torch.randn(2, 1, 1, 28, 28, dtype=torch.float64)
    zero = torch.zeros_like(x)
    torch.testing.assert_close(model(x + y), model(x) + model(y) - model(zero))
    relu = create_model("lenet5", pool="avg").double()
    assert not torch.allclose(relu(x + y), relu(x) + relu(y) - relu(zero))


def test_classic_input_field_is_the_papers():
    """28×28 digits in [0, 1] become a 32×32 field with background −0.1 and ink 1.175 (pad=0 takes 32×32)."""
    model = create_model("lenet5-classic")
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10:14, 10:14] = 1.0
    field = model.features.input(x)
    assert field.shape == (1, 1, 32, 32)
    assert field[0, 0, 0, 0].item() == pytest.approx(-0.1) and field.max().item() == pytest.approx(1.175)
    assert create_model("lenet5-classic", pad=0).input_shape == (1, 32, 32)
