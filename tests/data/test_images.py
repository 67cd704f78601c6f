"""`sample_image`: names, shapes, range, resizing, and the unknown-name error."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.data.images import sample_image, sample_image_names
from convscope.errors import UnknownNameError, UserError


def test_the_four_photographs_are_there():
    assert {"camera", "chelsea", "astronaut", "coffee"} <= set(sample_image_names())
    assert sample_image_names() == sorted(sample_image_names())


@pytest.mark.parametrize(("name", "shape"), [("camera", (512, 512)), ("chelsea", (300, 451)),
                                             ("astronaut", (512, 512)), ("coffee", (400, 600))])
def test_grey_float_in_unit_range(name, shape):
    img = sample_image(name)
    assert img.shape == shape and img.dtype == np.float32
    assert 0.0 <= img.min() < img.max() <= 1.0


def test_colour_and_resize():
    assert sample_image("chelsea", grey=False).shape == (300, 451, 3)
    assert sample_image("camera", grey=False, size=(32, 48)).shape == (32, 48, 3)  # grey repeated
    small = sample_image("astronaut", size=64)
    assert small.shape == (64, 64) and small.dtype == np.float32 and 0 <= small.min() and small.max() <= 1


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(UnknownNameError, match="did you mean 'camera'") as err:
        sample_image("camra")
    assert isinstance(err.value, UserError)


def test_grey_is_the_bt709_luma_of_skimages_colour_photograph():
    import skimage.data

    rgb = skimage.data.chelsea().astype(np.float64) / 255  # uint8 (300, 451, 3) as stored in the wheel
    np.testing.assert_allclose(sample_image("chelsea", grey=False), rgb, atol=1e-7)
    luma = 0.2125 * rgb[..., 0] + 0.7154 * rgb[..., 1] + 0.0721 * rgb[..., 2]  # ITU-R BT.709
    np.testing.assert_allclose(sample_image("chelsea"), luma, atol=1e-6)
    grey = skimage.data.camera().astype(np.float64) / 255
    np.testing.assert_allclose(sample_image("camera", grey=False), np.repeat(grey[..., None], 3, axis=2), atol=1e-7)


def test_read_image_prepares_a_users_file_as_stated(tmp_path):
    from PIL import Image

    from convscope.data.images import IMAGENET_MEAN, IMAGENET_STD, read_image

    # A 40×20 RGB image: left half pure red, right half white. Grey (ITU-R 601): red → 76/255.
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = 255
    Image.fromarray(arr).save(tmp_path / "a.png")
    grey, how = read_image(str(tmp_path / "a.png"), 1, (10, 10))
    # the shorter side (20) becomes 10, the 20-wide result is centre-cropped: columns 5..14 of the halved image
    assert grey.shape == (1, 10, 10) and grey.dtype == np.float32
    assert abs(grey[0, 5, 0] - 76 / 255) < 0.02 and abs(grey[0, 5, -1] - 1.0) < 0.02
    assert "PNG 40×20 RGB" in how and "centre-cropped to 10×10" in how
    rgb, how = read_image(str(tmp_path / "a.png"), 3, (10, 10), normalize="imagenet")
    expected = (np.array([1.0, 0, 0]) - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(rgb[:, 5, 0], expected, atol=0.05)
    inv, how = read_image(str(tmp_path / "a.png"), 1, (10, 10), invert=True)
    np.testing.assert_allclose(inv, 1 - grey, atol=1e-6)
    assert "inverted" in how


def test_read_image_refuses_what_it_cannot_read(tmp_path):
    import pytest

    from convscope.data.images import read_image
    from convscope.errors import UserError

    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(UserError, match="not an image Pillow can read"):
        read_image(str(tmp_path / "x.png"), 1, (28, 28))
    with pytest.raises(UserError, match="does not exist"):
        read_image(str(tmp_path / "missing.png"), 1, (28, 28))
    with pytest.raises(UserError, match="1- or 3-channel"):
        read_image("sample:camera", 4, (28, 28))
    img, how = read_image("sample:chelsea", 3, (32, 32))
    assert img.shape == (3, 32, 32) and "chelsea" in how
