"""Resize-pad-square: the PIL reference path against hand-worked boxes, and the torch path against PIL."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_rgb
from PIL import Image

from semantic_iqa.preprocess import normalize, pil_to_tensor, resize_pad_pil, resize_pad_tensor, resized_size

# (width, height) -> (left, top, right, bottom) of the image inside the 224 square, worked by hand:
# new side = max(1, round(side * 224 / longest)) with Python rounding; left/top pad = floor(pad / 2).
HAND_WORKED = {
    (1, 300): (111, 0, 112, 224),  # 1 * 224 / 300 = 0.75 -> 1 wide; pad 223 -> 111 left
    (300, 1): (0, 111, 224, 112),
    (224, 224): (0, 0, 224, 224),  # unchanged
    (500, 333): (0, 37, 224, 186),  # 333 * 0.448 = 149.18 -> 149; pad 75 -> 37 top
    (333, 500): (37, 0, 186, 224),  # portrait
    (100, 37): (0, 70, 224, 153),  # upscaled: 37 * 2.24 = 82.88 -> 83; pad 141 -> 70
    (448, 5): (0, 111, 224, 113),  # 5 * 0.5 = 2.5 -> 2 (round half to even); pad 222 -> 111
    (7, 3): (0, 64, 224, 160),  # upscaled x32: 96 rows; pad 128 -> 64 top
}


@pytest.mark.parametrize("size,box", HAND_WORKED.items(), ids=[f"{w}x{h}" for w, h in HAND_WORKED])
def test_pil_path_places_the_resized_image_at_the_hand_worked_box(size, box):
    image = random_rgb(*size, seed=sum(size))
    padded = np.asarray(resize_pad_pil(image, 224))
    assert padded.shape == (224, 224, 3)
    left, top, right, bottom = box
    inside = np.zeros((224, 224), dtype=bool)
    inside[top:bottom, left:right] = True
    assert (padded[~inside] == 0).all(), "padding must be black"
    expected = np.asarray(image.resize((right - left, bottom - top), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(padded[top:bottom, left:right], expected)


def test_pil_path_leaves_a_224_image_untouched():
    image = random_rgb(224, 224, seed=3)
    np.testing.assert_array_equal(np.asarray(resize_pad_pil(image, 224)), np.asarray(image))


def test_resized_size_uses_python_rounding():
    assert resized_size(448, 5, 224) == (224, 2)
    assert resized_size(448, 7, 224) == (224, 4)  # 3.5 -> 4 (half to even)
    assert resized_size(1, 10_000, 224) == (1, 224)


@pytest.mark.parametrize("size", [(256, 256), (100, 67), (57, 31), (224, 150), (31, 57), (1, 40)])
def test_torch_path_matches_pil_path_up_to_uint8_rounding(photo, size):
    image = photo.resize(size, Image.Resampling.LANCZOS)
    reference = pil_to_tensor(resize_pad_pil(image, 224))
    tensor = resize_pad_tensor(pil_to_tensor(image).unsqueeze(0), 224)[0]
    difference = (reference - tensor).abs()
    assert difference.max() <= 1.2 / 255
    assert difference.mean() <= 0.35 / 255


def test_torch_path_keeps_gradients_and_pads_with_zero():
    images = torch.rand(2, 3, 50, 100, requires_grad=True)
    padded = resize_pad_tensor(images, 224)
    assert padded.shape == (2, 3, 224, 224)
    assert (padded[:, :, :56] == 0).all() and (padded[:, :, 168:] == 0).all()  # 50 * 2.24 = 112 rows, 56 above
    padded.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_normalize_uses_per_channel_mean_and_std():
    images = torch.full((1, 3, 2, 2), 0.5)
    out = normalize(images, (0.5, 0.25, 0.0), (1.0, 0.5, 0.25))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.0, 0.5, 2.0]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("size", [(50, 100), (224, 224)])  # resampled, and padded only
def test_half_images_are_resampled_in_float32_and_gradients_reach_them(dtype, size):
    images = torch.rand(2, 3, *size).to(dtype).requires_grad_(True)
    as_float32 = images.detach().float().requires_grad_(True)  # exact: every half value is a float32 value
    padded, expected = resize_pad_tensor(images, 224), resize_pad_tensor(as_float32, 224)
    assert padded.dtype == torch.float32
    assert torch.equal(padded, expected)
    upstream = torch.randn(padded.shape, generator=torch.Generator().manual_seed(0))
    (padded * upstream).sum().backward()
    (expected * upstream).sum().backward()
    assert images.grad is not None and images.grad.dtype == dtype
    assert torch.equal(images.grad, as_float32.grad.to(dtype)), "the cast's backward is a cast back"
    assert images.grad.float().abs().sum() > 0
