"""Resize-pad-square and normalisation, in two exact forms.

The reference scales each image so its LONGER side is `size` (each side becomes
`max(1, round(side * size / longest))`, Python rounding), resamples with PIL bicubic, and
pads with black to `size x size`, `floor(pad / 2)` on the left/top and the rest on the
right/bottom. Pixels then go to [0, 1] and are normalised with CLIP's mean and std.

- `resize_pad_pil` is that pipeline itself, for paths, PIL images and uint8 arrays.
- `resize_pad_tensor` does the same steps in torch (antialiased bicubic) so that float
  tensors keep their gradients. It differs from the PIL path by PIL's rounding to uint8
  and small kernel differences; docs/inputs.md gives the measured difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


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
    """Differentiable resize-pad-square of float images.

    Args:
        images: [B, 3, H, W] float tensor with values in [0, 1].
        size: side of the output square.

    Returns:
        [B, 3, size, size] tensor in [0, 1], same dtype and device, gradients kept.
    """
    height, width = images.shape[-2:]
    new_w, new_h = resized_size(width, height, size)
    if (new_w, new_h) != (width, height):
        images = F.interpolate(images, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
        # PIL clips bicubic overshoot when it rounds to uint8; do the same.
        images = images.clamp(0.0, 1.0)
    left, top = pad_offsets(new_w, new_h, size)
    return F.pad(images, (left, size - new_w - left, top, size - new_h - top), value=0.0)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(images - mean) / std per channel, for [B, 3, H, W] tensors."""
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean_t) / std_t
