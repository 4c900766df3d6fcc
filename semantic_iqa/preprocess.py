"""Resize-pad-square and normalisation, in two exact forms.

The reference scales each image so its LONGER side is `size` (each side becomes
`max(1, round(side * size / longest))`, Python rounding), resamples with PIL bicubic, and
pads with black to `size x size`, `floor(pad / 2)` on the left/top and the rest on the
right/bottom. Pixels then go to [0, 1] and are normalised with CLIP's mean and std.

- `resize_pad_pil` is that pipeline itself, for paths, PIL images and uint8 arrays.
- `resize_pad_tensor` does the same steps in torch so that float tensors keep their
  gradients. It differs from the PIL path only by PIL's rounding to uint8 (measured in
  docs/inputs.md). float16 and bfloat16 images are resampled in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# Float dtypes that `resize_pad_tensor` resamples in float32 (and returns as float32).
REDUCED_PRECISION_DTYPES = frozenset({torch.float16, torch.bfloat16})


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) after scaling the longer side to `size`, as the reference rounds it."""
    longest = max(width, height)
    return max(1, round(width * size / longest)), max(1, round(height * size / longest))


def pad_offsets(width: int, height: int, size: int) -> tuple[int, int]:
    """(left, top) padding that centres a `width x height` image in a `size x size` square."""
    return (size - width) // 2, (size - height) // 2


def resize_pad_pil(image: Image.Image, size: int) -> Image.Image:
    """Reference resize-pad-square of an RGB PIL image to `size x size` (black padding)."""
    new_w, new_h = resized_size(image.width, image.height, size)
    # PIL returns a copy, not a resampled image, when the size does not change.
    resized = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    canvas.paste(resized, pad_offsets(new_w, new_h, size))
    return canvas


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 tensor [3, H, W] in [0, 1] (uint8 / 255, as torchvision does)."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)


def resize_pad_tensor(images: torch.Tensor, size: int) -> torch.Tensor:
    """Differentiable resize-pad-square of float images, matching the PIL path.

    PIL resamples 8-bit images in two passes, horizontal then vertical, and clips each
    pass to [0, 255]. Doing the same (antialiased bicubic per axis, clamp after each pass)
    leaves only PIL's rounding to uint8: about 1/255 at most, 0.3/255 on average on photos
    (docs/inputs.md). One 2-D pass without the intermediate clamp differs by up to 22/255
    at high-contrast edges.

    float16 and bfloat16 images are resampled in float32: torch has no CPU bicubic kernel
    for them, and their 11- or 8-bit mantissas would add rounding of their own at every
    pass. The conversion is differentiable, so gradients still reach the half tensor.

    Args:
        images: [B, 3, H, W] float tensor with values in [0, 1].
        size: side of the output square.

    Returns:
        [B, 3, size, size] tensor in [0, 1] on the same device, gradients kept; same dtype,
        except float32 for float16 and bfloat16 input.
    """
    height, width = images.shape[-2:]
    new_w, new_h = resized_size(width, height, size)
    images = resize_bicubic_like_pil(images, new_w, new_h)
    left, top = pad_offsets(new_w, new_h, size)
    return F.pad(images, (left, size - new_w - left, top, size - new_h - top), value=0.0)


def resize_bicubic_like_pil(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Differentiable bicubic resize of float images to `width x height`, as PIL resamples 8-bit images.

    PIL resamples in two passes, horizontal then vertical, antialiased, and clips each pass
    to [0, 255]; this does the same in torch (an axis whose size does not change is not
    resampled). What remains is PIL's rounding to uint8 (see `resize_pad_tensor`).

    Args:
        images: [B, C, H, W] float tensor with values in [0, 1].
        width: output width.
        height: output height.

    Returns:
        [B, C, height, width] tensor in [0, 1], gradients kept; float16 and bfloat16 input is
        resampled and returned in float32 (see `resize_pad_tensor`), other dtypes are kept.
    """
    if images.dtype in REDUCED_PRECISION_DTYPES:
        images = images.float()
    old_height, old_width = images.shape[-2:]
    if width != old_width:
        images = _bicubic(images, (old_height, width))
    if height != old_height:
        images = _bicubic(images, (height, width))
    return images


def _bicubic(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    resized = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)
    return resized.clamp(0.0, 1.0)


def normalize(
    images: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """(images - mean) / std per channel, for [B, 3, H, W] tensors."""
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean_t) / std_t
