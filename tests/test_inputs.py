"""Every accepted input kind gives the same pixels; every bad input gets its typed, clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_rgb
from PIL import Image

from semantic_iqa.errors import ImageLoadError, ImageNotFoundError, InvalidInputError, SemanticIQAError
from semantic_iqa.inputs import as_float_batch, as_image_list, check_same_length, is_single_image, load_padded


def padded(item) -> torch.Tensor:
    return load_padded(as_image_list(item)[0], 224)


def test_path_pil_array_and_uint8_tensor_give_identical_pixels(tmp_path):
    image = random_rgb(40, 30, seed=1)
    path = tmp_path / "img.png"
    image.save(path)
    array = np.asarray(image)
    expected = padded(image)
    for other in (path, str(path), array, torch.from_numpy(array.copy()).permute(2, 0, 1)):
        assert torch.equal(padded(other), expected)


def test_grey_palette_and_rgba_are_converted_like_pil(tmp_path):
    rgb = random_rgb(20, 10, seed=2)
    for mode in ("L", "P", "RGBA", "1"):
        converted = rgb.convert(mode)
        assert torch.equal(padded(converted), padded(converted.convert("RGB")))
    grey = np.asarray(rgb.convert("L"))
    assert torch.equal(padded(grey), padded(grey[..., None]))
    assert torch.equal(padded(grey), padded(torch.from_numpy(grey.copy())[None]))


def test_float_tensor_grey_is_repeated_to_rgb():
    grey = torch.rand(1, 20, 30)
    assert torch.equal(padded(grey), padded(grey.expand(3, 20, 30)))


def test_batches_and_lists_are_split_per_image():
    assert len(as_image_list(torch.rand(4, 3, 8, 8))) == 4
    assert len(as_image_list(np.zeros((2, 5, 6, 3), np.uint8))) == 2
    assert len(as_image_list([torch.rand(3, 8, 8), np.zeros((5, 6, 3), np.uint8)])) == 2
    assert len(as_image_list(torch.rand(3, 8, 8))) == 1
    assert is_single_image(torch.rand(3, 8, 8)) and not is_single_image(torch.rand(1, 3, 8, 8))
    assert not is_single_image([torch.rand(3, 8, 8)]) and is_single_image("x.png")


BAD_INPUTS = {
    "wrong rank": (torch.rand(8, 8), InvalidInputError, "CxHxW"),
    "5-D tensor": (torch.rand(1, 1, 3, 8, 8), InvalidInputError, "5-D"),
    "4 channels": (torch.rand(4, 8, 8), InvalidInputError, "1 or 3 channels"),
    "channels last tensor": (torch.rand(8, 8, 3), InvalidInputError, "1 or 3 channels"),
    "above one": (torch.rand(3, 8, 8) * 255, InvalidInputError, "uint8"),
    "below zero": (torch.rand(3, 8, 8) * 2 - 1, InvalidInputError, "(x + 1) / 2"),
    "nan": (torch.full((3, 8, 8), float("nan")), InvalidInputError, "NaN"),
    "inf": (torch.full((3, 8, 8), float("inf")), InvalidInputError, "Inf"),
    "int64 tensor": (torch.zeros(3, 8, 8, dtype=torch.int64), InvalidInputError, "int64"),
    "zero-size tensor": (torch.rand(3, 0, 8), InvalidInputError, "zero-size"),
    "empty batch": (torch.rand(0, 3, 8, 8), InvalidInputError, "empty"),
    "float array": (np.zeros((8, 8, 3), np.float32), InvalidInputError, "uint8"),
    "zero-size array": (np.zeros((0, 8, 3), np.uint8), InvalidInputError, "zero-size"),
    "5 channel array": (np.zeros((8, 8, 5), np.uint8), InvalidInputError, "HxWxC"),
    "empty list": ([], InvalidInputError, "empty"),
    "nested list": ([[torch.rand(3, 8, 8)]], InvalidInputError, "nested"),
    "unsupported type": (12, InvalidInputError, "unsupported type int"),
    "16-bit PIL": (Image.new("I;16", (8, 8)), ImageLoadError, "unsupported mode"),
    "float PIL": (Image.new("F", (8, 8)), ImageLoadError, "unsupported mode"),
    "zero-size PIL": (Image.new("RGB", (0, 8)), ImageLoadError, "zero size"),
}


@pytest.mark.parametrize("bad,error,message", BAD_INPUTS.values(), ids=list(BAD_INPUTS))
def test_bad_inputs_raise_typed_errors(bad, error, message):
    with pytest.raises(error) as caught:
        as_image_list(bad, "dist")
    assert message in str(caught.value)
    assert str(caught.value).startswith("dist")
    assert isinstance(caught.value, SemanticIQAError) and isinstance(caught.value, ValueError)


def test_range_error_says_what_was_seen():
    with pytest.raises(InvalidInputError, match=r"min 0, max 255"):
        as_image_list(torch.tensor([0.0, 255.0]).repeat(3, 2, 1))


def test_missing_file(tmp_path):
    with pytest.raises(ImageNotFoundError, match="not found") as caught:
        as_image_list(tmp_path / "missing.png", "ref")
    assert isinstance(caught.value, FileNotFoundError)


def test_corrupt_and_truncated_files(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    truncated = tmp_path / "truncated.png"
    random_rgb(64, 64, seed=4).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    for path in (junk, truncated):
        with pytest.raises(ImageLoadError, match="cannot decode image"):
            load_padded(path, 224)


def test_16_bit_png_on_disk_is_refused(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 40_000, np.uint16)).save(path)
    with pytest.raises(ImageLoadError, match="unsupported mode"):
        load_padded(path, 224)


def test_mismatched_batch_sizes():
    with pytest.raises(InvalidInputError, match="2 reference image"):
        check_same_length([1, 2], [1])


def test_float_batch_accepts_float_tensors_only():
    assert as_float_batch(torch.rand(3, 5, 5)).shape == (1, 3, 5, 5)
    with pytest.raises(InvalidInputError, match="predict"):
        as_float_batch("a.png", "ref")
