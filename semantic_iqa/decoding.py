"""Decoding: a path, PIL image or uint8 array/tensor becomes an upright RGB PIL image.

Part of input handling (`semantic_iqa.inputs`, which validates every kind of input and
re-exports these names): EXIF orientation is applied with `PIL.ImageOps.exif_transpose`,
palette, grey and RGBA images are converted as PIL's `convert("RGB")` does, and every
problem is an `ImageLoadError` naming the image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError, ImageNotFoundError

# What can be decoded: `semantic_iqa.inputs.ImageLike` (defined there, which imports this module).
Decodable = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor

# Modes that `convert("RGB")` maps faithfully. 32-bit integer, 16-bit and float modes
# would be clipped to 8 bits without warning, so they are refused.
SUPPORTED_PIL_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})


def to_rgb_pil(item: Decodable) -> Image.Image:
    """Decode a path, PIL image or uint8 array/tensor to an upright RGB PIL image.

    Paths and PIL images have their EXIF orientation applied; a PIL image passed in is not
    modified (a new image is returned).
    """
    if isinstance(item, (str, os.PathLike)):
        return _open(Path(item))
    if isinstance(item, torch.Tensor):  # uint8, validated: [C, H, W]
        item = item.detach().cpu().permute(1, 2, 0).numpy()
    if isinstance(item, np.ndarray):
        grey_hw1 = item.ndim == 3 and item.shape[-1] == 1
        return Image.fromarray(np.ascontiguousarray(item[..., 0] if grey_hw1 else item)).convert("RGB")
    return _pil_to_rgb(item, "PIL image")


def _open(path: Path) -> Image.Image:
    check_image_file(path)
    try:
        with Image.open(path) as image:
            image.load()
            return _pil_to_rgb(image, str(path))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot decode image {path}: {exc}") from None


def check_image_file(path: Path, name: str | None = None) -> None:
    """`ImageLoadError` for a directory, `ImageNotFoundError` for a missing file; `name` prefixes the message."""
    prefix = f"{name}: " if name else ""
    if path.is_dir():
        raise ImageLoadError(f"{prefix}{path} is a directory, not an image file")
    if not path.is_file():
        raise ImageNotFoundError(f"{prefix}image file not found: {path}")


def _pil_to_rgb(image: Image.Image, name: str) -> Image.Image:
    check_pil(image, name)
    # exif_transpose returns a new image (a plain copy when there is no orientation to
    # apply), so the caller's image is never changed and untagged pixels stay bit-exact.
    upright = ImageOps.exif_transpose(image)
    # convert() to the same mode would only copy the copy again.
    return upright if upright.mode == "RGB" else upright.convert("RGB")


def check_pil(image: Image.Image, name: str) -> None:
    """`ImageLoadError` unless `image` is open, not empty and of a mode `convert("RGB")` maps faithfully."""
    _check_pil_open(image, name)
    if image.width == 0 or image.height == 0:
        raise ImageLoadError(f"{name} has zero size ({image.width}x{image.height})")
    if image.mode not in SUPPORTED_PIL_MODES:
        raise ImageLoadError(
            f"{name} has unsupported mode {image.mode!r} (high bit depth or float); "
            "convert it to 8-bit RGB first, or pass a float tensor scaled to [0, 1]"
        )


def _check_pil_open(image: Image.Image, name: str) -> None:
    # A closed image fails deep inside PIL: ValueError("Operation on closed image"), or a
    # bare AssertionError for a file opened lazily in a `with Image.open(...)` block that
    # ended before its pixels were loaded. Find it here without decoding open images: an
    # `Image.open(path)` not loaded yet is the most common input of all and must pass.
    # The states differ across Pillow versions (tests/test_pillow_versions.py runs this on
    # the oldest Pillow our pins allow and on the newest):
    #   - Pillow >= 11 raises AssertionError from `image.im` until the pixels are loaded,
    #     and ValueError once close() was called;
    #   - older Pillow returns None until loaded, and a placeholder that raises ValueError
    #     on any attribute once closed.
    try:
        try:
            core = image.im
        except AssertionError:
            core = None  # nothing decoded yet (Pillow >= 11); not a sign of a closed image
        if core is not None:
            _ = core.size  # older Pillow's placeholder for a closed image raises here
        elif getattr(image, "fp", None) is None:
            image.load()  # not decoded yet and its file is gone: only loading can tell
    except (ValueError, AssertionError, AttributeError, OSError) as exc:
        what_pil_said = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ImageLoadError(
            f"{name}: the PIL image is closed, its pixels can no longer be read ({what_pil_said}); "
            "pass it before calling close(), or call .load() inside its `with Image.open(...)` block"
        ) from None
