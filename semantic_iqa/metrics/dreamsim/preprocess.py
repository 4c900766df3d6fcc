"""DreamSim's preprocessing: a bicubic resize to a `size x size` square, aspect NOT kept.

The authors' `preprocess` is torchvision's `Resize((224, 224), BICUBIC)` on the PIL image, then
`ToTensor()`; each branch normalises inside the model. DSS-SQA pads to a square and
MST-CLIPIQA crops one; DreamSim squashes, so the names here say `squashed`.

- `load_squashed` runs torchvision's own resize on the PIL image (paths, PIL images, uint8
  data): it IS the reference path.
- Float tensors take `squash_tensor`, DSS-SQA's per-axis antialiased bicubic resampler
  (`semantic_iqa.preprocess.resize_bicubic_like_pil`), which keeps gradients and differs from
  the PIL path only by PIL's rounding to uint8.
"""

from __future__ import annotations

import torch
import torchvision.transforms.functional as TF

from ...errors import InvalidInputError
from ...inputs import ImageLike, to_rgb_pil
from ...preprocess import pil_to_tensor, resize_bicubic_like_pil

IMAGE_SIZE = 224


def squash_tensor(images: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """[B, C, H, W] float in [0, 1] (C = 1 or 3) -> [B, 3, size, size], gradients kept; no resampling at that size."""
    if images.shape[-3] == 1:  # grey -> RGB by repeating the channel, as PIL's convert("RGB")
        images = images.expand(*images.shape[:-3], 3, *images.shape[-2:])
    return resize_bicubic_like_pil(images, size, size)


def load_squashed(item: ImageLike, size: int = IMAGE_SIZE) -> torch.Tensor:
    """One image validated by `semantic_iqa.inputs.as_image_list` -> [3, size, size] float in [0, 1].

    Float tensors ([C, H, W]) keep their device and gradients; everything else goes through
    PIL (EXIF orientation applied) and comes back as float32 on the CPU.
    """
    if isinstance(item, torch.Tensor) and item.is_floating_point():
        if item.dim() != 3 or item.shape[0] not in (1, 3):
            raise InvalidInputError(f"expected one [C, H, W] image with C = 1 or 3, got shape {tuple(item.shape)}")
        return squash_tensor(item.unsqueeze(0), size)[0]
    resized = TF.resize(to_rgb_pil(item), [size, size], interpolation=TF.InterpolationMode.BICUBIC)
    return pil_to_tensor(resized)
