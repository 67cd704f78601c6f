"""Inversion, seeded backgrounds and compositing (convscope.data.transforms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.data.transforms import background_indices, background_params, backgrounds, composite, invert


def test_invert_is_an_involution_on_tensors_and_arrays():
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(invert(invert(x)), x, atol=1e-7, rtol=0)  # exact up to float rounding
    a = np.linspace(0, 1, 11)
    np.testing.assert_allclose(invert(invert(a)), a, atol=1e-15)
    np.testing.assert_allclose(invert(a), a[::-1], atol=1e-15)  # 0 <-> 1, and [0, 1] onto itself
    binary = (x > 0.5).float()
    assert torch.equal(invert(invert(binary)), binary)  # exact on 0/1 pixels


def test_backgrounds_are_deterministic_per_seed_and_differ_across_seeds():
    a, b = backgrounds(10, 28, seed=3), backgrounds(10, 28, seed=3)
    assert a.shape == (10, 28, 28) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert np.isclose(a.reshape(10, -1).min(1), 0).all() and np.isclose(a.reshape(10, -1).max(1), 1).all()
    other = backgrounds(10, 28, seed=4)
    assert all(not np.allclose(a[k], other[k]) for k in range(10))
    assert all(not np.allclose(a[i], a[j]) for i in range(10) for j in range(i))  # 10 different textures
    np.testing.assert_array_equal(backgrounds(3, 28, seed=3), a[:3])  # background k depends on (seed, k) only


def test_background_params_describe_the_drawn_textures():
    params = background_params(10, seed=3)
    assert len(params) == 10 and params == background_params(10, seed=3)
    assert set(params[0]) == {"sigma", "freq", "theta", "phase", "mix"}
    assert all(0.8 <= p["sigma"] <= 3 and 1.5 <= p["freq"] <= 5 and 0.2 <= p["mix"] <= 0.8 for p in params)
    assert params != background_params(10, seed=4)


def test_background_indices_are_seeded_and_cover_every_texture():
    idx = background_indices(1000, 10, seed=1)
    assert idx.dtype == torch.int64 and torch.equal(idx, background_indices(1000, 10, seed=1))
    assert set(idx.tolist()) == set(range(10))
    assert not torch.equal(idx, background_indices(1000, 10, seed=2))


def test_composite_keeps_the_ink_and_shows_the_background_elsewhere():
    bgs = backgrounds(10, 28, seed=0)
    digits = torch.zeros(3, 1, 28, 28)
    digits[:, :, 10:18, 12:16] = 1.0
    digits[:, :, 5, 5] = 0.5
    idx = torch.tensor([0, 4, 9])
    out = composite(digits, bgs, idx, alpha=0.5)
    assert out.shape == digits.shape and out.dtype == digits.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[:, :, 10:18, 12:16], digits[:, :, 10:18, 12:16])  # ink stays 1
    torch.testing.assert_close(out[:, 0, 0, 0], 0.5 * torch.from_numpy(bgs[[0, 4, 9], 0, 0]))
    torch.testing.assert_close(out[:, 0, 5, 5], 0.5 + 0.5 * 0.5 * torch.from_numpy(bgs[[0, 4, 9], 5, 5]))
    assert torch.equal(composite(digits, bgs, idx, alpha=0.0), digits)


def test_composite_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="backgrounds of shape"):
        composite(torch.zeros(2, 1, 28, 28), backgrounds(2, 32), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="one background index per image"):
        composite(torch.zeros(2, 1, 28, 28), backgrounds(2, 28), torch.tensor([0]))
