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

from convscope.errors import UserError, unknown_name

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


# ------------------------------------------------------------------------------ a user's image file

MAX_PIXELS = 64_000_000  # larger images are refused (a decompression bomb would otherwise fill memory)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def read_image(path: str, channels: int, size: tuple[int, int], invert: bool = False,
               normalize: str | None = None) -> tuple[np.ndarray, str]:
    """An image file (PNG, JPEG, … anything Pillow reads), or `sample:NAME` for scikit-image's samples, as a
    float32 `(channels, H, W)` array ready for a model, and a sentence saying how it was prepared.

    The image becomes grey (ITU-R 601 luma, Pillow's "L") or RGB, is resized so its shorter side is the
    target's (bicubic) and centre-cropped to `size`, scaled to [0, 1], optionally inverted (MNIST digits
    are white on black) and normalised with ImageNet's mean and std (`normalize="imagenet"`, what
    torchvision's weights expect).
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise UserError(f"Images can be read for 1- or 3-channel models, not {channels} channels.")
    if normalize not in (None, "imagenet"):
        raise UserError(f"Unknown normalisation {normalize!r}: use imagenet or none.")
    if path.startswith("sample:"):
        arr = (sample_image(path.removeprefix("sample:"), grey=False) * 255).round().astype(np.uint8)
        img, what = Image.fromarray(arr), f"scikit-image's sample {path.removeprefix('sample:')!r}"
    else:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            img = Image.open(path)
            img.load()
        except FileNotFoundError:
            raise UserError(f"Image file {path} does not exist: check the path given with --image.") from None
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as e:
            raise UserError(f"{path} is not an image Pillow can read ({e}): give a PNG or JPEG file.") from None
        what = f"{path} ({img.format} {img.width}×{img.height} {img.mode})"
    img = img.convert("L" if channels == 1 else "RGB")
    H, W = size
    scale = max(H / img.height, W / img.width)
    new = (max(W, round(img.width * scale)), max(H, round(img.height * scale)))
    img = img.resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - W) // 2, (new[1] - H) // 2
    img = img.crop((left, top, left + W, top + H))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr[None] if channels == 1 else arr.transpose(2, 0, 1)  # (C, H, W)
    steps = [f"read {what}", f"converted to {'grey' if channels == 1 else 'RGB'}",
             f"resized (bicubic) and centre-cropped to {H}×{W}", "scaled to [0, 1]"]
    if invert:
        arr = 1.0 - arr
        steps.append("inverted (1 − x)")
    if normalize == "imagenet":
        mean = np.array(IMAGENET_MEAN[:channels], np.float32).reshape(-1, 1, 1)
        std = np.array(IMAGENET_STD[:channels], np.float32).reshape(-1, 1, 1)
        arr = (arr - mean) / std
        steps.append("normalised with ImageNet's mean and std")
    return np.ascontiguousarray(arr, dtype=np.float32), "; ".join(steps) + "."
