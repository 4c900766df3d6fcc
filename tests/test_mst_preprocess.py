"""MST-CLIPIQA's shorter-side resize + centre crop: hand-worked boxes, torchvision, and the torch path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_rgb
from PIL import Image
from torchvision import transforms

from semantic_iqa.metrics.mst_clipiqa.preprocess import (
    center_crop_offsets,
    load_short_side_center_cropped,
    resize_short_side_center_crop_pil,
    resize_short_side_center_crop_tensor,
    short_side_resized_size,
)
from semantic_iqa.preprocess import pil_to_tensor

# (width, height) -> (resized width, resized height, crop left, crop top), worked by hand:
# short side -> 224, long side -> int(224 * long / short) (truncated);
# offset = int(round((side - 224) / 2.0)), Python's round: halves go to the even neighbour.
HAND_WORKED = {
    (224, 224): (224, 224, 0, 0),  # untouched
    (225, 300): (224, 298, 0, 37),  # 224 * 300 / 225 = 298.67 -> 298; (298 - 224) / 2 = 37
    (300, 225): (298, 224, 37, 0),
    (500, 333): (336, 224, 56, 0),  # 224 * 500 / 333 = 336.34 -> 336; 112 / 2 = 56
    (333, 501): (224, 337, 0, 56),  # 337.01 -> 337; 113 / 2 = 56.5 -> 56 (half to even)
    (229, 224): (229, 224, 2, 0),  # no resize; 5 / 2 = 2.5 -> 2 (half to even, not 3)
    (227, 224): (227, 224, 2, 0),  # 3 / 2 = 1.5 -> 2 (half to even, up here)
    (225, 224): (225, 224, 0, 0),  # 0.5 -> 0
    (224, 400): (224, 400, 0, 88),  # shorter side already 224: only cropped
    (2000, 50): (8960, 224, 4368, 0),  # very wide: upscaled x4.48
    (40, 1000): (224, 5600, 0, 2688),  # very tall
    (7, 3): (522, 224, 149, 0),  # 224 * 7 / 3 = 522.67 -> 522
    (1, 3): (224, 672, 0, 224),
}


@pytest.mark.parametrize("size,expected", HAND_WORKED.items(), ids=[f"{w}x{h}" for w, h in HAND_WORKED])
def test_sizes_and_offsets_are_the_hand_worked_ones(size, expected):
    new_w, new_h, left, top = expected
    assert short_side_resized_size(*size) == (new_w, new_h)
    assert center_crop_offsets(new_w, new_h) == (left, top)


@pytest.mark.parametrize("size,expected", HAND_WORKED.items(), ids=[f"{w}x{h}" for w, h in HAND_WORKED])
def test_pil_path_is_pil_bicubic_then_the_hand_worked_crop(size, expected):
    new_w, new_h, left, top = expected
    image = random_rgb(*size, seed=sum(size))
    resized = image if (new_w, new_h) == size else image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    box = np.asarray(resized)[top : top + 224, left : left + 224]
    np.testing.assert_array_equal(np.asarray(resize_short_side_center_crop_pil(image)), box)


def test_a_224_image_is_untouched():
    image = random_rgb(224, 224, seed=5)
    np.testing.assert_array_equal(np.asarray(resize_short_side_center_crop_pil(image)), np.asarray(image))


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (513, 257), (224, 225), (100, 67), (31, 57), (1000, 999)])
def test_pil_path_is_the_reference_torchvision_transform(size):
    reference = transforms.Compose(
        [transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(224)]
    )
    image = random_rgb(*size, seed=size[0] * 7 + size[1])
    np.testing.assert_array_equal(np.asarray(resize_short_side_center_crop_pil(image)), np.asarray(reference(image)))


def test_size_arithmetic_matches_torchvision_on_many_sizes():
    rng = np.random.default_rng(0)
    sizes = [tuple(int(v) for v in rng.integers(1, 1200, size=2)) for _ in range(150)]
    for width, height in sizes:
        resized = transforms.functional.resize(Image.new("L", (width, height)), 224)
        assert short_side_resized_size(width, height) == resized.size, (width, height)
        cropped_box = center_crop_offsets(*resized.size)
        marker = Image.new("L", resized.size)
        marker.putpixel(cropped_box, 255)  # the crop's top-left corner must land at (0, 0)
        assert transforms.functional.center_crop(marker, 224).getpixel((0, 0)) == 255, (width, height)


@pytest.mark.parametrize("size", [(256, 256), (300, 225), (225, 300), (333, 501), (100, 67), (31, 57), (229, 224)])
def test_tensor_path_matches_pil_path_up_to_uint8_rounding(photo, size):
    image = photo.resize(size, Image.Resampling.LANCZOS)
    reference = pil_to_tensor(resize_short_side_center_crop_pil(image))
    tensor = resize_short_side_center_crop_tensor(pil_to_tensor(image).unsqueeze(0))[0]
    assert tensor.shape == (3, 224, 224)
    difference = (reference - tensor).abs()
    assert difference.max() <= 1.2 / 255
    assert difference.mean() <= 0.35 / 255


def test_tensor_path_keeps_gradients_and_crops_without_padding():
    images = torch.rand(2, 3, 120, 300, requires_grad=True)
    out = resize_short_side_center_crop_tensor(images)
    assert out.shape == (2, 3, 224, 224) and out.min() >= 0 and out.max() <= 1
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    # A 224-high image is only cropped: the centre columns, bit for bit.
    plain = torch.rand(1, 3, 224, 301)
    torch.testing.assert_close(resize_short_side_center_crop_tensor(plain), plain[..., 38:262], rtol=0, atol=0)


def test_load_accepts_paths_pil_uint8_and_grey_float(tmp_path, photo):
    path = tmp_path / "photo.png"
    photo.save(path)
    from_path = load_short_side_center_cropped(path)
    torch.testing.assert_close(from_path, pil_to_tensor(resize_short_side_center_crop_pil(photo)))
    torch.testing.assert_close(load_short_side_center_cropped(np.asarray(photo)), from_path)
    grey = torch.rand(1, 50, 80)
    torch.testing.assert_close(
        load_short_side_center_cropped(grey), load_short_side_center_cropped(grey.expand(3, -1, -1))
    )
