"""Transforms: sizes, what each does to a known image, and randomness only from the generator handed in."""

from __future__ import annotations

import pytest
import torch

from convscope.optvis.transforms import (
    ANGLES,
    SCALES,
    affine,
    compose,
    crop,
    jitter,
    normalize,
    pad,
    random_rotate,
    random_scale,
    standard,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ramp(h: int = 6, w: int = 6) -> torch.Tensor:
    return torch.arange(float(h * w)).view(1, 1, h, w).expand(2, 3, h, w).clone()


def test_lucids_choices():
    assert SCALES[0] == pytest.approx(0.9) and SCALES[5] == 1 and SCALES[-1] == pytest.approx(1.1) and len(SCALES) == 11
    assert len(ANGLES) == 26 and ANGLES.count(0) == 6 and min(ANGLES) == -10 and max(ANGLES) == 10


def test_pad_and_crop():
    x = ramp()
    padded = pad(2)(x, gen())
    assert padded.shape == (2, 3, 10, 10) and float(padded[0, 0, 0, 0]) == 0.5 and float(padded[0, 0, -1, 4]) == 0.5
    assert torch.equal(crop(6, 6)(padded, gen()), x)
    assert crop(2, 4)(x, gen()).tolist() == x[..., 2:4, 1:5].tolist()
    with pytest.raises(ValueError, match="cannot crop"):
        crop(7, 6)(x, gen())


def test_jitter_is_a_whole_pixel_shift_within_range():
    x = ramp(8, 8)
    seen = set()
    for seed in range(30):
        y = jitter(2)(x, gen(seed))
        assert y.shape == x.shape
        # the interior is x shifted: find the shift by where x's value 27 (row 3, column 3) went
        r, c = (int(v) for v in (y[0, 0] == 27).nonzero()[0])
        dy, dx = 3 - r, 3 - c
        assert -2 <= dy <= 2 and -2 <= dx <= 2
        assert torch.equal(y[..., 2:6, 2:6], x[..., 2 + dy:6 + dy, 2 + dx:6 + dx])
        seen.add((dy, dx))
    assert len(seen) > 10  # it does move, in both directions
    assert jitter(0)(x, gen()) is x


def test_affine_identity_quarter_turn_and_zoom():
    x = torch.rand(2, 3, 7, 7, generator=gen(3))
    assert torch.equal(affine(x), x)
    torch.testing.assert_close(affine(affine(x, degrees=90), degrees=-90), x, atol=1e-5, rtol=0)
    quarter = affine(x, degrees=90)
    assert any(torch.allclose(quarter, torch.rot90(x, k, dims=(-2, -1)), atol=1e-5) for k in (1, 3))
    # zoom 3 about the centre: output pixel (i, j) samples input (3 + (i − 3)/3, 3 + (j − 3)/3), pixel centres at
    # i, j in {0, 3, 6} → input pixels 2, 3, 4 exactly
    zoomed = affine(x, scale=3)
    for i in (0, 3, 6):
        for j in (0, 3, 6):
            torch.testing.assert_close(zoomed[..., i, j], x[..., 3 + (i - 3) // 3, 3 + (j - 3) // 3], atol=1e-5, rtol=0)
    torch.testing.assert_close(zoomed[..., 0, 1], (2 * x[..., 2, 2] + x[..., 2, 3]) / 3, atol=1e-5, rtol=0)  # bilinear


def test_random_scale_and_rotate_draw_from_their_lists():
    x = torch.rand(1, 1, 9, 9, generator=gen(4))
    for seed in range(5):
        y = random_scale([1.5])(x, gen(seed))
        torch.testing.assert_close(y, affine(x, scale=1.5))
        torch.testing.assert_close(random_rotate([30])(x, gen(seed)), affine(x, degrees=30))
    outs = {tuple(random_rotate()(x, gen(seed)).flatten()[:5].tolist()) for seed in range(20)}
    assert len(outs) > 3


def test_normalize():
    x = torch.ones(1, 3, 2, 2)
    y = normalize([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])(x, gen())
    assert y[0, :, 0, 0].tolist() == [1.0, 3.0, 0.5]


def test_the_standard_set_keeps_the_size_and_only_the_generator_decides():
    state = torch.get_rng_state()
    for h, w in ((28, 28), (32, 24), (224, 224)):
        x = torch.rand(2, 3, h, w, generator=gen(1))
        t = standard(h, w)
        a, b, c = t(x, gen(7)), t(x, gen(7)), t(x, gen(8))
        assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    # one draw serves the batch: each image is transformed as it would be alone
    x = torch.rand(3, 1, 28, 28, generator=gen(2))
    t = standard(28, 28)
    torch.testing.assert_close(t(x, gen(5))[1:2], t(x[1:2], gen(5)))
    assert compose()(x, gen()) is x
    assert torch.equal(torch.get_rng_state(), state)
