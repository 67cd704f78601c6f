"""The streaming top-k scan against a brute-force sort of every activation, its exact merge (also across two
torch.distributed processes), and receptive boxes against the support of a gradient."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from convscope.analysis.topk import (
    TopK,
    TopKScan,
    _reach,
    gather_topk,
    input_patch,
    merge_topk,
    receptive_box,
    receptive_boxes,
    top_examples,
)
from convscope.errors import UserError
from convscope.hooks import activations, conv_layers, record
from convscope.models import create_model
from tests.untouched import assert_untouched, snapshot
from tests.usermodels import user_model


def _data(name: str, n: int = 37) -> tuple[nn.Module, torch.Tensor, list[str]]:
    torch.manual_seed(0)
    if name == "lenet5":
        model = create_model("lenet5")
        return model, torch.rand(n, 1, 28, 28), ["features.conv1", "features.pool1", "features.relu2",
                                                 "classifier.fc1"]
    model = user_model()
    return model, torch.rand(n, 3, 32, 32), conv_layers(model)


def _brute_force(model: nn.Module, x: torch.Tensor, layers: list[str], k: int) -> dict[str, tuple]:
    """Every example's spatial maximum per channel, sorted by value (descending) then index, first k kept."""
    model.eval()
    acts = activations(model, x, layers)
    out = {}
    for layer, a in acts.items():
        flat = a.flatten(2) if a.dim() == 4 else a[..., None]
        best, at = flat.max(2)  # (N, C)
        width = a.shape[3] if a.dim() == 4 else 1
        rows = []
        for c in range(a.shape[1]):
            ranked = sorted(range(len(x)), key=lambda i: (-float(best[i, c]), i))[:k]
            rows.append((torch.stack([best[i, c] for i in ranked]), torch.tensor(ranked),
                         torch.tensor([[int(at[i, c]) // width, int(at[i, c]) % width] for i in ranked])))
        out[layer] = tuple(torch.stack(r) for r in zip(*rows, strict=True))
    return out


def _same(t: TopK, expected: tuple) -> None:
    values, index, pos = expected
    torch.testing.assert_close(t.values, values, atol=1e-5, rtol=1e-5)
    assert torch.equal(t.index, index) and torch.equal(t.pos, pos)


@pytest.mark.parametrize("name", ["lenet5", "user"])
def test_the_scan_equals_a_brute_force_sort_whatever_the_batch_size(name):
    model, x, layers = _data(name)
    model.train()
    before = snapshot(model)
    expected = _brute_force(copy.deepcopy(model), x, layers, k=5)
    for batch_size in (1, 8, 37):
        seen = []
        tops = top_examples(model, x, layers, k=5, progress=seen.append, batch_size=batch_size)
        assert seen[-1] == 37 and len(seen) == -(-37 // batch_size)
        for layer in layers:
            _same(tops[layer], expected[layer])
    assert_untouched(model, before)  # train mode back, nothing else touched


def test_batches_may_be_a_loader_of_pairs_or_a_generator_and_default_to_conv_layers():
    model, x, _ = _data("lenet5")
    pairs = [(x[i:i + 10], torch.zeros(len(x[i:i + 10]))) for i in range(0, len(x), 10)]
    a = top_examples(model, pairs, k=3)
    b = top_examples(model, (x[i:i + 4] for i in range(0, len(x), 4)), k=3)
    assert list(a) == list(b) == ["features.conv1", "features.conv2"]
    for layer in a:
        assert torch.equal(a[layer].index, b[layer].index) and a[layer].values.shape == (a[layer].index.shape)


def test_k_larger_than_the_data_keeps_every_example_once():
    model, x, layers = _data("lenet5", n=4)
    tops = top_examples(model, x, layers, k=9, batch_size=3)
    expected = _brute_force(model, x, layers, k=9)
    for layer in layers:
        assert tops[layer].values.shape[1] == 4 and tops[layer].k == 9
        _same(tops[layer], expected[layer])
        assert (tops[layer].index.sort(1).values == torch.arange(4)).all()


def test_the_state_holds_k_per_channel_however_many_batches():
    scan = TopKScan(k=4)
    gen = torch.Generator().manual_seed(0)
    for step in range(200):
        scan.update({"conv": torch.randn(16, 6, 5, 5, generator=gen), "fc": torch.randn(16, 10, generator=gen)},
                    torch.arange(step * 16, step * 16 + 16))
        sizes = {n: (t.values.shape, t.index.shape, t.pos.shape) for n, t in scan.state.items()}
        assert sizes == {"conv": ((6, 4), (6, 4), (6, 4, 2)), "fc": ((10, 4), (10, 4), (10, 4, 2))}


def test_ties_go_to_the_smaller_index_and_a_repeated_index_counts_once():
    scan = TopKScan(k=3)
    scan.update({"l": torch.tensor([[1.0], [2.0], [2.0], [0.5]])}, torch.tensor([7, 9, 3, 1]))
    scan.update({"l": torch.tensor([[2.0], [2.0]])}, torch.tensor([5, 3]))  # 3 again (a padded sampler)
    t = scan.state["l"]
    assert t.index.tolist() == [[3, 5, 9]] and t.values.tolist() == [[2.0, 2.0, 2.0]]


def test_merging_the_shards_equals_scanning_the_union():
    model, x, layers = _data("user")
    whole = top_examples(model, x, layers, k=6, batch_size=16)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    a, b = order[:15], order[15:]  # two disjoint, interleaved shards, with their global indices
    ta = top_examples(model, x[a], layers, k=6, indices=a, batch_size=4)
    tb = top_examples(model, x[b], layers, k=6, indices=b.tolist(), batch_size=7)
    for layer in layers:
        for merged in (merge_topk(ta[layer], tb[layer]), merge_topk(tb[layer], ta[layer])):
            torch.testing.assert_close(merged.values, whole[layer].values, atol=1e-5, rtol=1e-5)
            assert torch.equal(merged.index, whole[layer].index) and torch.equal(merged.pos, whole[layer].pos)
    assert gather_topk(whole[layers[0]]) is whole[layers[0]]  # not distributed: itself


def _rank(rank: int, world: int, path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ["TOPK_PORT"])
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, x, layers = _data("lenet5")
        mine = torch.arange(rank, len(x), world)  # DistributedSampler's split, without shuffling
        tops = top_examples(model, x[mine], layers, k=5, indices=mine, batch_size=5)
        merged = {n: gather_topk(t) for n, t in tops.items()}
        if rank == 0:
            torch.save(merged, path)
    finally:
        torch.distributed.destroy_process_group()


def test_two_distributed_ranks_gather_the_scan_of_the_whole_dataset(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        os.environ["TOPK_PORT"] = str(s.getsockname()[1])
    mp.spawn(_rank, args=(2, str(tmp_path / "tops.pt")), nprocs=2)
    merged = torch.load(tmp_path / "tops.pt", weights_only=False)
    model, x, layers = _data("lenet5")
    expected = _brute_force(model, x, layers, k=5)
    for layer in layers:
        _same(merged[layer], expected[layer])


def test_wrong_inputs_are_refused():
    model, x, _ = _data("lenet5")
    with pytest.raises(UserError, match="conv9"):
        top_examples(model, x, ["features.conv9"])
    with pytest.raises(UserError, match="indices"):
        top_examples(model, x, indices=range(5))
    with pytest.raises(UserError, match="indices"):
        top_examples(model, x, indices=range(50))
    with pytest.raises(UserError, match=r"\(N, C, H, W\)"):
        top_examples(model, x[0])
    with pytest.raises(UserError, match="k must"):
        top_examples(model, x, k=0)


# ------------------------------------------------------------------------------------ receptive fields


def _support_boxes(model: nn.Module, layer: str, shape: tuple[int, int, int]) -> dict[tuple[int, int], tuple]:
    """The oracle: for units of channel 0 (all, or near the borders and the middle of large maps), the box of
    the pixels its gradient reaches, on a copy where nothing can hide one (all conv weights 1, no bias, so
    every ReLU passes an input of ones; max pooling, whose gradient reaches only the maximum, replaced by
    average pooling over the same windows)."""
    m = copy.deepcopy(model).eval()
    for parent in list(m.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                         child.ceil_mode))
    with torch.no_grad():
        for conv in m.modules():
            if isinstance(conv, nn.Conv2d):
                conv.weight.fill_(1.0)
                if conv.bias is not None:
                    conv.bias.zero_()
    inp = torch.ones(1, *shape, requires_grad=True)
    with record(m, [layer], detach=False) as acts:
        m(inp)
    a = acts[layer]
    boxes = {}
    h, w = a.shape[2:]
    edges = lambda n: sorted({0, 1, 2, n // 2, n - 3, n - 2, n - 1} & set(range(n))) if n > 10 else range(n)  # noqa: E731
    for y in edges(h):
        for x in edges(w):
            (grad,) = torch.autograd.grad(a[0, 0, y, x], inp, retain_graph=True)
            rows, cols = grad[0].abs().sum(0).nonzero().unbind(1)
            boxes[y, x] = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
    return boxes


def _every_position(model: nn.Module, layer: str, shape: tuple[int, int, int]) -> None:
    for (y, x), expected in _support_boxes(model, layer, shape).items():
        assert receptive_box(model, layer, y, x, shape[1:]) == expected, (y, x)


@pytest.mark.parametrize("layer", ["features.conv1", "features.pool1", "features.conv2", "features.pool2"])
def test_receptive_boxes_of_lenet5_equal_the_gradient_support(layer):
    _every_position(create_model("lenet5"), layer, (1, 28, 28))


def test_receptive_boxes_with_stride_padding_dilation_and_ceil_mode_equal_the_gradient_support():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(inplace=True),  # (B, 3, 10, 10)
                          nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),  # (B, 3, 5, 5)
                          nn.Conv2d(3, 4, 3, padding=2, dilation=2), nn.ReLU(),  # (B, 4, 5, 5)
                          nn.Conv2d(4, 2, 2, stride=2))  # (B, 2, 2, 2): drops the last row and column
    for layer in ("0", "2", "3", "5"):
        _every_position(model, layer, (2, 19, 19))


def test_a_fully_connected_unit_sees_the_whole_image_and_patches_are_cut():
    model = create_model("lenet5")
    assert receptive_box(model, "classifier.fc1", 0, 0, (28, 28)) == (0, 28, 0, 28)
    box = receptive_box(model, "features.conv2", 0, 9, (28, 28))
    x = torch.arange(28 * 28.0).view(1, 1, 28, 28)
    assert input_patch(x, box).shape == (1, 1, box[1] - box[0], box[3] - box[2])
    assert input_patch(x, box)[0, 0, 0, 0] == x[0, 0, box[0], box[2]]


def test_receptive_box_follows_a_residual_block_and_f_relu():
    """By hand, on the user's model (3×32×32): `conv` (3×3, stride 2, padding 1) at (3, 3) reads rows 5..7 of the
    residual block's output; the block's two 3×3 convs widen that to rows 3..9 of the stem's output (its skip
    connection adds 5..7 only) and the stem's 3×3 conv to rows 2..10 of the image; at (0, 0): rows 0..1, 0..3,
    0..4. `block.conv2` at (0, 31): conv1's rows 0..1 and columns 30..31, the stem's 0..2 and 29..31, the image's
    0..3 and 28..31; at (5, 5): 4..6, 3..7, 2..8."""
    model = user_model()
    assert receptive_box(model, "conv", 3, 3, (32, 32)) == (2, 11, 2, 11)
    assert receptive_box(model, "conv", 0, 0, (32, 32)) == (0, 5, 0, 5)
    assert receptive_boxes(model, "block.conv2", [(0, 31), (5, 5)], (32, 32)) == [(0, 4, 28, 32), (2, 9, 2, 9)]
    assert receptive_box(user_model(), "stem.0", 0, 31, (32, 32)) == (0, 2, 30, 32)
    with pytest.raises(UserError, match="more than once"):
        receptive_box(model, "block.relu", 3, 3, (32, 32))


def _all_positions(model: nn.Module, layer: str, shape: tuple[int, int, int]) -> list[tuple[int, int]]:
    with torch.no_grad():
        h, w = activations(model.eval(), torch.zeros(1, *shape), [layer])[layer].shape[2:]
    return [(y, x) for y in range(h) for x in range(w)]


@pytest.mark.parametrize("name", ["lenet5", "allconv-c"])
def test_the_autograd_probe_equals_the_chain_walk_at_every_unit(name):
    """Two independent ways to the same boxes: the chain walk's arithmetic and `_reach`'s gradient support."""
    model = create_model(name).eval()
    shape = tuple(model.input_shape)
    for layer in conv_layers(model):
        positions = _all_positions(model, layer, shape)
        assert _reach(model, layer, positions, shape) == receptive_boxes(model, layer, positions, shape[1:]), layer


def test_the_probe_turns_dilated_and_ceil_mode_max_pools_into_their_windows():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(inplace=True),  # (B, 3, 10, 10)
                          nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),  # (B, 3, 5, 5)
                          nn.MaxPool2d(3, stride=1, padding=1, dilation=2),  # (B, 3, 3, 3)
                          nn.Conv2d(3, 2, 2))  # (B, 2, 2, 2)
    for layer in ("2", "3", "4"):
        positions = _all_positions(model, layer, (2, 19, 19))
        assert _reach(model, layer, positions, (2, 19, 19)) == receptive_boxes(model, layer, positions, (19, 19))


def test_receptive_boxes_through_upsampling_equal_the_gradient_support():
    """A nearest-neighbour upsampling and a transposed conv: no kernel walk reads them; the probe does."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3, padding=1),
                          nn.ConvTranspose2d(2, 2, 2, stride=2), nn.Conv2d(2, 1, 3, padding=1))  # 6 → 12 → 24
    for layer in ("2", "3", "4"):
        _every_position(model, layer, (1, 6, 6))




def test_a_group_norm_below_the_layer_makes_every_unit_see_the_whole_image():
    """GroupNorm normalises over each group's whole map, so (by hand) every unit above it depends on every pixel;
    the chain walk would have passed it by as pointwise. The one-channel probe cannot run it (its weight has the
    model's channels) and runs with the model's own channel counts instead."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.Conv2d(4, 2, 3, padding=1))
    assert receptive_boxes(model, "2", [(0, 0), (7, 7)], (8, 8)) == [(0, 8, 0, 8), (0, 8, 0, 8)]
    assert receptive_box(model, "0", 0, 0, (8, 8)) == (0, 2, 0, 2)  # below the GroupNorm: the chain walk


@pytest.mark.parametrize("layer", ["features.inception3a.branch2.conv.conv", "features.inception4a.branch4.proj.conv",
                                   "features.inception5b.branch3.conv.conv"])
def test_receptive_boxes_through_inception_branches_equal_the_gradient_support(layer):
    """GoogLeNet concatenates branches of different widths, with a max-pooling branch (torch.cat in forward: no
    chain), so the boxes come from the probe; the oracle is the gradient support of a copy with weights of ones."""
    torch.manual_seed(0)
    _every_position(create_model("googlenet", num_classes=10).eval(), layer, (3, 64, 64))
