"""Input validation and decoding: everything a user may pass becomes [3, S, S] pixels in [0, 1].

Accepted images (alone or in a list/tuple):

- a path (`str` or `os.PathLike`) to an image file;
- a `PIL.Image.Image`;
- a `numpy.uint8` array, HxW, HxWx1, HxWx3 or HxWx4 (or a batch NxHxWxC);
- a `torch.uint8` tensor, CxHxW or BxCxHxW with C in {1, 3};
- a floating-point tensor with values in [0, 1], CxHxW or BxCxHxW with C in {1, 3}.

Paths, PIL images and uint8 data go through the reference PIL pipeline (palette, grey and
RGBA images are converted to RGB as PIL's `convert("RGB")` does). Float tensors go through
the differentiable torch pipeline; float16 and bfloat16 tensors are resampled in float32.

Images are scored as a person sees them: an EXIF orientation tag (paths and PIL images, as
a phone camera writes it) is applied with `PIL.ImageOps.exif_transpose` before anything
else, so a photo stored sideways with orientation 6 scores like its physically rotated
copy. Images without an orientation tag (or with orientation 1) keep their pixels bit for
bit, as in the authors' pipeline. A PIL image passed in is never modified.

Problems are raised as `InvalidInputError` subclasses naming the offending image: missing
files, directories, closed PIL images, tensors on the `meta` device (which hold no data;
any other device is accepted), wrong shapes or ranges are all found before any model work;
files that cannot be decoded, when they are read (`semantic_iqa.decoding`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# Decoding (paths, PIL images, uint8 data -> upright RGB) lives in `decoding`; its public
# names stay importable from here, where callers have always found them.
from .decoding import SUPPORTED_PIL_MODES, check_image_file, check_pil, to_rgb_pil  # noqa: F401 (re-exported)
from .errors import InvalidInputError
from .preprocess import pil_to_tensor, resize_pad_pil, resize_pad_tensor

ImageLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor
Images = ImageLike | Sequence[ImageLike]


def as_image_list(images: Images, role: str = "image") -> list[ImageLike]:
    """Validate `images` and split them into one entry per image (batches split into views).

    Args:
        images: one image or a list/tuple of images (see the module docstring).
        role: word used in error messages, e.g. "ref" or "dist".
    """
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise InvalidInputError(f"{role}: the list of images is empty")
        items: list[ImageLike] = []
        for index, image in enumerate(images):
            if isinstance(image, (list, tuple)):
                raise InvalidInputError(f"{role}[{index}]: nested lists are not accepted; pass one flat list")
            items.extend(_split_one(image, f"{role}[{index}]"))
        return items
    return _split_one(images, role)


def as_float_batch(images: torch.Tensor, role: str = "image") -> torch.Tensor:
    """Validate a float tensor [B, C, H, W] or [C, H, W] in [0, 1]; return it as [B, C, H, W]."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise InvalidInputError(
            f"{role}: this call takes float tensors in [0, 1] (it keeps gradients); "
            "use predict() or semantic_iqa.score() for paths, PIL images and uint8 data"
        )
    _check_tensor(images, role)
    return images if images.dim() == 4 else images.unsqueeze(0)


def is_single_image(images: Images) -> bool:
    """True for one image (not a list or tuple, not a 4-D batch): such calls get scalar results."""
    if isinstance(images, (list, tuple)):
        return False
    if isinstance(images, (torch.Tensor, np.ndarray)):
        return images.ndim != 4
    return True


def check_same_length(ref: Sequence[object], dist: Sequence[object]) -> None:
    """Raise `InvalidInputError` unless there are as many reference as distorted images."""
    if len(ref) != len(dist):
        raise InvalidInputError(
            f"got {len(ref)} reference image(s) but {len(dist)} distorted image(s); pass one of each per pair"
        )


def image_columns(names: Sequence[str], values: Sequence[Images]) -> dict[str, list[ImageLike]]:
    """Validate per-role image arguments (one image, a list, or a batch each) into equal-length columns."""
    columns = {name: as_image_list(value, name) for name, value in zip(names, values, strict=True)}
    first, *others = columns.values()
    for other in others:
        check_same_length(first, other)
    return columns


def load_padded(item: ImageLike, size: int) -> torch.Tensor:
    """One validated image -> resize-padded [3, size, size] float tensor in [0, 1].

    Float tensors keep their device and gradients, and their dtype except float16 and
    bfloat16, which come back as float32 (see `resize_pad_tensor`). Everything else goes
    through PIL (EXIF orientation applied) and comes back as float32 on the CPU.
    """
    if isinstance(item, torch.Tensor) and item.is_floating_point():
        return resize_pad_tensor(_to_three_channels(item).unsqueeze(0), size)[0]
    return pil_to_tensor(resize_pad_pil(to_rgb_pil(item), size))


def _split_one(image: object, name: str) -> list[ImageLike]:
    if isinstance(image, (str, os.PathLike)):
        check_image_file(Path(image), name)
        return [image]
    if isinstance(image, Image.Image):
        check_pil(image, name)
        return [image]
    if isinstance(image, np.ndarray):
        return _split_array(image, name)
    if isinstance(image, torch.Tensor):
        return _split_tensor(image, name)
    raise InvalidInputError(
        f"{name}: unsupported type {type(image).__name__}; pass a path, a PIL image, a uint8 "
        "HxWxC array or a float tensor in [0, 1]"
    )


def _split_array(array: np.ndarray, name: str) -> list[ImageLike]:
    if array.dtype != np.uint8:
        raise InvalidInputError(
            f"{name}: numpy arrays must be uint8 HxWxC (got dtype {array.dtype}); for floats in [0, 1] "
            "pass torch.from_numpy(array).permute(2, 0, 1) instead"
        )
    if array.ndim == 4:
        return list(_check_hwc(array, name, batched=True))
    return [_check_hwc(array, name, batched=False)]


def _check_hwc(array: np.ndarray, name: str, batched: bool) -> np.ndarray:
    rank_ok = array.ndim in ((4,) if batched else (2, 3))
    channels = array.shape[-1] if array.ndim >= 3 else 1
    if not rank_ok or channels not in (1, 3, 4):
        raise InvalidInputError(
            f"{name}: uint8 arrays must be HxW or HxWxC (C = 1, 3 or 4), or NxHxWxC; got shape {array.shape}"
        )
    height, width = array.shape[-3:-1] if array.ndim >= 3 else array.shape
    if height == 0 or width == 0:
        raise InvalidInputError(f"{name}: zero-size image (shape {array.shape})")
    return array


def _split_tensor(tensor: torch.Tensor, name: str) -> list[ImageLike]:
    _check_tensor(tensor, name)
    if tensor.dim() == 4:
        return list(tensor.unbind(0))
    return [tensor]


def _check_tensor(tensor: torch.Tensor, name: str) -> None:
    # Any device with data is fine (predict moves images to the model's device); a meta
    # tensor has a shape but no values, so nothing can be computed from it.
    if tensor.is_meta:
        raise InvalidInputError(
            f"{name}: tensor of shape {tuple(tensor.shape)} is on the 'meta' device and holds no pixel values; "
            "materialise it (e.g. on 'cpu' or 'cuda') first"
        )
    if tensor.is_nested or tensor.layout != torch.strided:  # sparse, nested: no dense pixel grid to resize
        layout = "nested" if tensor.is_nested else str(tensor.layout).removeprefix("torch.")
        raise InvalidInputError(
            f"{name}: {layout} tensors are not supported; pass a dense tensor (`.to_dense()`), "
            "or a list of tensors for images of different sizes"
        )
    if tensor.dim() not in (3, 4):
        raise InvalidInputError(
            f"{name}: tensors must be CxHxW or BxCxHxW; got {tensor.dim()}-D shape {tuple(tensor.shape)}"
        )
    channels, height, width = tensor.shape[-3:]
    if channels not in (1, 3):
        raise InvalidInputError(
            f"{name}: tensors must have 1 or 3 channels in dimension -3 (CxHxW); got shape {tuple(tensor.shape)}"
        )
    if height == 0 or width == 0 or (tensor.dim() == 4 and tensor.shape[0] == 0):
        raise InvalidInputError(f"{name}: empty or zero-size tensor (shape {tuple(tensor.shape)})")
    if tensor.is_floating_point() and tensor.element_size() == 1:  # the float8 formats: most ops refuse them
        raise InvalidInputError(
            f"{name}: tensor dtype {tensor.dtype} (float8) is not supported; convert it with .float() "
            "(or .to(torch.bfloat16)) first"
        )
    if tensor.is_floating_point():
        check_unit_range(tensor, name)
    elif tensor.dtype != torch.uint8:
        raise InvalidInputError(
            f"{name}: tensor dtype {tensor.dtype} is not supported; pass floats in [0, 1] or uint8 in [0, 255]"
        )


# Float pixels a rounding error outside [0, 1] (1.0000001 from `x / x.max()`, 1.0078 from bfloat16
# arithmetic) are images in [0, 1], not images in another range: accept them. pyiqa allows 1e-6;
# for a low-precision dtype one step of that dtype above 1.0 is the same kind of rounding error.
UNIT_RANGE_TOLERANCE = 1e-6


def unit_range_tolerance(dtype: torch.dtype) -> float:
    """How far outside [0, 1] float pixels of `dtype` may be: 1e-6, or one step of a coarser dtype."""
    return max(UNIT_RANGE_TOLERANCE, torch.finfo(dtype).eps)


def check_unit_range(tensor: torch.Tensor, name: str) -> None:
    """Raise `InvalidInputError` unless float `tensor` is finite and in [0, 1] (within `unit_range_tolerance`).

    The message gives the tensor's real minimum and maximum, unrounded. Skipped while
    `torch.compile` traces (see the comment below).
    """
    if torch.compiler.is_compiling():
        # Reading values back to the host breaks a torch.compile graph (7 breaks in a loss):
        # compiled code is checked where it is called eagerly, or clamps (the losses' clamp=True).
        return
    values = tensor.detach()
    if not torch.isfinite(values).all():
        raise InvalidInputError(f"{name}: tensor contains NaN or Inf values")
    low, high = float(values.min()), float(values.max())
    tolerance = unit_range_tolerance(values.dtype)
    if low < -tolerance or high > 1.0 + tolerance:
        raise InvalidInputError(
            f"{name}: float tensors must hold values in [0, 1] (rounding errors up to {tolerance:.3g} are accepted); "
            f"its values range from {low!r} to {high!r}. If the image is in [0, 255] pass it as uint8 "
            "(accepted as such) or divide by 255; if it is in [-1, 1] pass (x + 1) / 2"
        )


def _to_three_channels(images: torch.Tensor) -> torch.Tensor:
    # A grey image becomes RGB by repeating its channel, as PIL's convert("RGB") does.
    return images.expand(*images.shape[:-3], 3, *images.shape[-2:]) if images.shape[-3] == 1 else images


def load_padded_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """Validated float batch [B, C, H, W] in [0, 1] -> [B, 3, size, size], gradients kept."""
    return resize_pad_tensor(_to_three_channels(images), size)
