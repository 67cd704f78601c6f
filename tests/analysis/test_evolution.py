"""Feature evolution against a brute-force loop over epochs, images and positions; settle epochs by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.analysis.evolution import channel_maxima, feature_evolution, pick_channels, settle_epochs
from convscope.errors import UserError
from convscope.hooks import activations
from convscope.models import create_model
from tests.untouched import assert_untouched, snapshot


def test_settle_epochs_by_hand():
    index = np.array([[4, 4, 4, 4],  # never changes: settled from the first epoch
                      [1, 2, 3, 3],  # settles at the third
                      [1, 1, 2, 1],  # changes back at the last: only the last counts
                      [5, 6, 5, 5]])
    assert settle_epochs(index, [1, 2, 5, 10]).tolist() == [1, 5, 10, 5]
    assert pick_channels(16, 4) == [0, 5, 10, 15] and pick_channels(3, 8) == [0, 1, 2]


def _epochs():
    weights = {}
    for e in (1, 2, 3):
        torch.manual_seed(e)
        weights[e] = {k: v.clone() for k, v in create_model("lenet5").state_dict().items()}
    return weights


def test_feature_evolution_equals_brute_force():
    torch.manual_seed(0)
    model, x = create_model("lenet5"), torch.rand(40, 1, 28, 28)
    model.train()
    weights = _epochs()
    before = snapshot(model)
    evo = feature_evolution(model, weights, x, channels={"features.conv1": [0, 3], "features.conv2": [2, 7, 11]},
                            k=3, batch_size=16)
    assert_untouched(model, before)
    assert evo.epochs == [1, 2, 3] and evo.layers == ["features.conv1", "features.conv2"]
    for ei, e in enumerate(evo.epochs):
        m = create_model("lenet5")
        m.load_state_dict(weights[e])
        acts = activations(m, x, evo.layers)
        for layer in evo.layers:
            for ci, c in enumerate(evo.channels[layer]):
                a = acts[layer][:, c]  # (N, h, w)
                best = a.flatten(1).max(1).values
                order = torch.argsort(best, descending=True)[:3]
                assert evo.index[layer][ci, ei].tolist() == order.tolist()
                np.testing.assert_allclose(evo.value[layer][ci, ei], best[order].numpy(), rtol=1e-6)
                for j, n in enumerate(order):
                    y, xx = evo.pos[layer][ci, ei, j]
                    assert a[n, y, xx] == best[n]
    assert evo.settle("features.conv1").shape == (2,)
    assert evo.overlap("features.conv2")[:, -1].tolist() == [1.0, 1.0, 1.0]


def test_channel_maxima_and_refusals():
    torch.manual_seed(0)
    model, x = create_model("lenet5"), torch.rand(5, 1, 28, 28)
    v, where = channel_maxima(model, x, ["features.conv2"])["features.conv2"]
    assert v.shape == (5, 16) and where.shape == (5, 16, 2)
    with pytest.raises(UserError, match="keep_epochs"):
        feature_evolution(model, {}, x)
    with pytest.raises(UserError, match="not feature maps"):
        channel_maxima(model, x, ["classifier.fc1"])
