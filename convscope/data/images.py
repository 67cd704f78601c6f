"""Natural sample images for the convolution and pooling experiments: `sample_image(name)`.

The textbook convolution chapter (Qiu Xipeng, *Neural Networks and Deep Learning*, ch. 5; docs/REFERENCE.md §1)
shows what a Sobel, Gaussian or Laplacian kernel does to a photograph. We use the photographs bundled
with scikit-image (`skimage.data`, files shipped inside the wheel, so nothing is downloaded): the
cameraman, Chelsea the cat, the astronaut Eileen Collins, a cup of coffee, and a few textures.

Every image comes back as float32 in [0, 1]: grey `(H, W)` by default (the ITU-R BT.709 luma that
`skimage.color.rgb2gray` computes), or colour `(H, W, 3)`.

Example:
    >>> img = sample_image("camera", size=128)
    >>> img.shape, img.dtype, float(img.min()) >= 0.0
    ((128, 128), dtype('float32'), True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from convscope.errors import unknown_name

# name -> the skimage.data function that loads it (all bundled with scikit-image, none downloaded).
_LOADERS: dict[str, str] = {
    "astronaut": "astronaut",
    "brick": "brick",
    "camera": "camera",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "coins": "coins",
    "grass": "grass",
    "gravel": "gravel",
    "moon": "moon",
    "page": "page",
    "rocket": "rocket",
    "text": "text",
}


def sample_image_names() -> list[str]:
    """The names `sample_image` accepts, sorted."""
    return sorted(_LOADERS)


def sample_image(name: str, grey: bool = True, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """A bundled natural image as float32 in [0, 1].

    Args:
        name: one of `sample_image_names()` ("camera", "chelsea", "astronaut", "coffee", ...).
        grey: return one luma channel `(H, W)`; otherwise `(H, W, 3)` (a grey image is repeated
            into three channels).
        size: resize to `(H, W)`, or to `size × size` for an int, with anti-aliasing; None keeps the
            original size.

    Returns:
        The image, float32, values in [0, 1].

    Raises:
        UnknownNameError: `name` is not a sample image; the message suggests close names.

    Example:
        >>> sample_image("chelsea", grey=False, size=(64, 96)).shape
        (64, 96, 3)
    """
    if name not in _LOADERS:
        raise unknown_name("image", name, _LOADERS)
    img = _load(_LOADERS[name])
    if grey and img.ndim == 3:
        from skimage.color import rgb2gray

        img = rgb2gray(img)  # (H, W, 3) -> (H, W), 0.2125 R + 0.7154 G + 0.0721 B
    elif not grey and img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)  # (H, W) -> (H, W, 3)
    if size is not None:
        from skimage.transform import resize

        hw = (size, size) if isinstance(size, int) else tuple(size)
        img = resize(img, (*hw, *img.shape[2:]), anti_aliasing=True, preserve_range=True)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _load(loader: str) -> np.ndarray:
    """The image as float64 in [0, 1] ((H, W) or (H, W, 3)), whatever dtype skimage stores it in."""
    import skimage.data
    from skimage.util import img_as_float

    fetch: Callable[[], np.ndarray] = getattr(skimage.data, loader)
    img = img_as_float(fetch())
    if img.ndim == 3 and img.shape[2] == 4:  # drop an alpha channel
        img = img[..., :3]
    return img


__all__ = ["sample_image", "sample_image_names"]
