"""`semantic_iqa.score` / `score_details`: return types, caching, argument order, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import ImageFilter

import semantic_iqa
from semantic_iqa.errors import InvalidInputError, InvalidOptionError


@pytest.fixture
def blurred(photo):
    return photo.filter(ImageFilter.GaussianBlur(2))


def test_single_pair_gives_a_float_and_a_batch_gives_a_tensor(tiny_dir, photo, blurred):
    single = semantic_iqa.score(photo, blurred, weights=tiny_dir, device="cpu")
    assert isinstance(single, float) and 0.0 <= single <= 5.0
    batch = semantic_iqa.score([photo, photo], [blurred, photo], weights=tiny_dir, device="cpu", batch_size=1)
    assert isinstance(batch, torch.Tensor) and batch.shape == (2,) and batch.dtype == torch.float32
    assert batch[0].item() == pytest.approx(single, abs=1e-6)


def test_every_input_kind_gives_the_same_score(tiny_dir, photo, blurred, tmp_path):
    photo.save(tmp_path / "ref.png")
    blurred.save(tmp_path / "dist.png")
    expected = semantic_iqa.score(photo, blurred, weights=tiny_dir, device="cpu")
    as_array = np.asarray(photo), np.asarray(blurred)
    for ref, dist in [
        (tmp_path / "ref.png", tmp_path / "dist.png"),
        as_array,
        tuple(torch.from_numpy(a.copy()).permute(2, 0, 1) for a in as_array),
    ]:
        assert semantic_iqa.score(ref, dist, weights=tiny_dir, device="cpu") == pytest.approx(expected, abs=1e-6)


def test_model_is_loaded_once_per_weights_and_device(tiny_dir):
    semantic_iqa.clear_model_cache()
    first = semantic_iqa.load_model(tiny_dir, "cpu")
    assert semantic_iqa.load_model(str(tiny_dir), "cpu") is first
    semantic_iqa.clear_model_cache()
    assert semantic_iqa.load_model(tiny_dir, "cpu") is not first


def test_the_metric_is_asymmetric(tiny_dir, photo, blurred):
    forward = semantic_iqa.score(photo, blurred, weights=tiny_dir, device="cpu")
    swapped = semantic_iqa.score(blurred, photo, weights=tiny_dir, device="cpu")
    # Measured: swapping moves the tiny model's score by 0.18 (2.83 -> 2.65); float rounding
    # alone moves scores by 7e-7 at most. The tolerance sits far from both.
    assert forward != pytest.approx(swapped, abs=0.05)


def test_score_details(tiny_dir, photo, blurred):
    detail = semantic_iqa.score_details(photo, blurred, weights=tiny_dir, device="cpu", gate="off")
    assert isinstance(detail, semantic_iqa.PairScore)
    assert len(detail.fold_scores) == 5
    assert detail.score == pytest.approx(float(np.mean(detail.fold_scores)), abs=1e-5)
    assert detail.fold_std == pytest.approx(float(np.std(detail.fold_scores, ddof=1)), abs=1e-5)
    assert -1.0 <= detail.cos_sim <= 1.0 + 1e-6 and detail.gated is False
    many = semantic_iqa.score_details([photo], [blurred], weights=tiny_dir, device="cpu", gate="off")
    assert many == [detail]


def test_api_errors(tiny_dir, photo):
    with pytest.raises(InvalidOptionError, match="unknown gate mode"):
        semantic_iqa.score(photo, photo, weights=tiny_dir, device="cpu", gate="maybe")
    with pytest.raises(InvalidOptionError, match="unknown device 'gpu0'"):
        semantic_iqa.score(photo, photo, weights=tiny_dir, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidOptionError, match="CUDA is not available"):
            semantic_iqa.score(photo, photo, weights=tiny_dir, device="cuda")
    with pytest.raises(InvalidInputError, match="2 reference image"):
        semantic_iqa.score([photo, photo], [photo], weights=tiny_dir, device="cpu")
    with pytest.raises(InvalidInputError, match="empty"):
        semantic_iqa.score([], [], weights=tiny_dir, device="cpu")
