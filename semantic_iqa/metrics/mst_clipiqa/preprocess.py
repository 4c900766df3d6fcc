"""MST-CLIPIQA's preprocessing: SHORTER side to 224, then a centre CROP (no padding).

The reference applies torchvision's `Resize(224, BICUBIC)` to the PIL image (the shorter
side becomes 224, the longer `int(224 * long / short)`, truncated; PIL bicubic) and then
`CenterCrop(224)` (top = `int(round((h - 224) / 2.0))`, left likewise, Python rounding).
Pixels then go to [0, 1]; the CLIP normalisation is done inside the model.

DSS-SQA's preprocessing (`semantic_iqa.preprocess`) is another one: longer side to the size,
black padding. The functions here all say `short_side` and `center_crop` in their names so
the two cannot be swapped by accident.

- `resize_short_side_center_crop_pil` runs torchvision's own functions on the PIL image: it
  IS the reference path (torchvision computes the sizes and the offsets as above).
- `resize_short_side_center_crop_tensor` does the same in torch for float tensors, keeping
  gradients, with DSS-SQA's per-axis bicubic resampler (`resize_bicubic_like_pil`); it
  differs from the PIL path only by PIL's rounding to uint8.
"""

from __future__ import annotations

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from ...errors import InvalidInputError
from ...inputs import ImageLike, to_rgb_pil
from ...preprocess import pil_to_tensor, resize_bicubic_like_pil

IMAGE_SIZE = 224


def short_side_resized_size(width: int, height: int, size: int = IMAGE_SIZE) -> tuple[int, int]:
    """(width, height) after scaling the SHORTER side to `size`; the longer is truncated, as torchvision does."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def center_crop_offsets(width: int, height: int, size: int = IMAGE_SIZE) -> tuple[int, int]:
    """(left, top) of the centred `size x size` box in a `width x height` image (Python rounding, as torchvision)."""
    return int(round((width - size) / 2.0)), int(round((height - size) / 2.0))


def resize_short_side_center_crop_pil(image: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """The reference pipeline on an RGB PIL image: shorter side to `size` (bicubic), centre crop to `size x size`."""
    resized = TF.resize(image, size, interpolation=TF.InterpolationMode.BICUBIC)
    return TF.center_crop(resized, [size, size])


def resize_short_side_center_crop_tensor(images: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Differentiable version of `resize_short_side_center_crop_pil` for float images.

    Args:
        images: [B, 3, H, W] float tensor with values in [0, 1].
        size: side of the output square (224 for MST-CLIPIQA).

    Returns:
        [B, 3, size, size] tensor in [0, 1], gradients kept, on the same device; float16 and
        bfloat16 input is resampled and returned in float32. Differs from the PIL path by at
        most about 1/255 (PIL rounds every pass to uint8).
    """
    height, width = images.shape[-2:]
    new_w, new_h = short_side_resized_size(width, height, size)
    resized = resize_bicubic_like_pil(images, new_w, new_h)
    left, top = center_crop_offsets(new_w, new_h, size)
    return resized[..., top : top + size, left : left + size]


def load_short_side_center_cropped(item: ImageLike, size: int = IMAGE_SIZE) -> torch.Tensor:
    """One image validated by `semantic_iqa.inputs.as_image_list` -> [3, size, size] in [0, 1].

    Float tensors ([C, H, W], C = 1 or 3) take the differentiable path and keep their device
    and gradients; paths, PIL images and uint8 data go through PIL (EXIF orientation applied,
    see `semantic_iqa.inputs`) and come back as float32 on the CPU.
    """
    if isinstance(item, torch.Tensor) and item.is_floating_point():
        if item.dim() != 3 or item.shape[0] not in (1, 3):
            raise InvalidInputError(f"expected one [C, H, W] image with C = 1 or 3, got shape {tuple(item.shape)}")
        # A grey image becomes RGB by repeating its channel, as PIL's convert("RGB") does.
        rgb = item.expand(3, *item.shape[-2:])
        return resize_short_side_center_crop_tensor(rgb.unsqueeze(0), size)[0]
    return pil_to_tensor(resize_short_side_center_crop_pil(to_rgb_pil(item), size))
