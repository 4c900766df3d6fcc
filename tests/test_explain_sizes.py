"""explain with a reference of another size than the distorted image, checked against a reference
resized here, independently of the package (PIL, as `semantic_iqa/preprocess.py` documents it).

The metric resize-pads each image of a pair on its own (longer side to `image_size`, black
padding), so the score of a pair of different sizes is that of the two squares made here. The
map's cells are put back from the reference resized to the distorted image's size (PIL bicubic
for decoded images), so each occlusion cell's gain, and the integrated-gradients total, are
recomputed here from that resized reference. A reference replaced by anything else (a black
image, the reference padded at the distorted image's size) moves these figures far past the
tolerances, which the tests check too, so they cannot pass on an empty difference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from semantic_iqa.explanation import explain
from semantic_iqa.explanation.attribution import grid_cells
from tests.conftest import EXAMPLES

WIDTH, HEIGHT = 240, 160  # the distorted image (3:2, smaller than the tiny model's 336)
GRID = 2
QUADRANT = (slice(0, HEIGHT // 2), slice(WIDTH // 2, WIDTH))  # the changed part: one cell of the 2 x 2 grid


def resize_pad_here(image: Image.Image, size: int) -> torch.Tensor:
    """Longer side to `size` (Python rounding), PIL bicubic, black padding floor(pad / 2) left/top: [3, S, S]."""
    longest = max(image.size)
    new = tuple(max(1, round(side * size / longest)) for side in image.size)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(image.resize(new, Image.Resampling.BICUBIC), ((size - new[0]) // 2, (size - new[1]) // 2))
    return as_float(canvas)


def as_float(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def photo_rgb() -> Image.Image:
    return Image.open(EXAMPLES / "ref.png").convert("RGB")


# A square reference smaller than the metric's input, and a 4:3 one larger than it: both of
# another aspect than the 3:2 distorted image, so padding the reference at the distorted
# image's size instead of on its own changes the squares the metric sees. The distorted image
# is the resized reference with noise in its top-right quadrant only: every other pixel equals
# the resized reference's, so its map value must be exactly 0 (a small change also keeps the
# integrated-gradients path nearly straight for the random model: 16 points are within 2 %).
@pytest.fixture(scope="module", params=[(120, 120), (400, 300)], ids=["small-square-ref", "large-4x3-ref"])
def pair(request, photo_rgb: Image.Image) -> dict:
    ref = photo_rgb.resize(request.param, Image.Resampling.BICUBIC)
    ref_at_dist = ref.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)  # what the map's cells are put back from
    pixels = np.asarray(ref_at_dist, dtype=np.float64).copy()
    pixels[QUADRANT] += np.random.default_rng(3).normal(0, 0.04 * 255, size=(HEIGHT // 2, WIDTH // 2, 3))
    dist = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
    return {"ref": ref, "dist": dist, "ref_at_dist": ref_at_dist}


def assert_zero_outside_the_quadrant(heat: np.ndarray) -> None:
    outside = np.ones(heat.shape, dtype=bool)
    outside[QUADRANT] = False
    assert not heat[outside].any()  # exact: those pixels equal the resized reference's
    assert heat[QUADRANT].any()


def scores(model, ref_square: torch.Tensor, dists: torch.Tensor, gate: str = "off") -> torch.Tensor:
    """The metric's scores of the reference square against float distorted images (the model pads those itself)."""
    with torch.no_grad():
        return model(ref_square.expand(len(dists), -1, -1, -1), dists, gate=gate).score


def test_the_score_is_the_metric_s_with_each_image_padded_on_its_own(tiny_model, pair):
    size = tiny_model.config.preprocess.image_size
    result = explain(pair["ref"], pair["dist"], model=tiny_model, method="occlusion", gate="off", grid=1)
    ref_square, dist_square = resize_pad_here(pair["ref"], size), resize_pad_here(pair["dist"], size)
    expected = scores(tiny_model, ref_square[None], dist_square[None])
    assert result.score == pytest.approx(float(expected), abs=1e-5)
    # Not an empty check: the reference padded at the distorted image's size scores otherwise.
    stretched = scores(tiny_model, resize_pad_here(pair["ref_at_dist"], size)[None], dist_square[None])
    assert abs(float(stretched - expected)) > 1e-3


def test_occlusion_cells_are_put_back_from_the_independently_resized_reference(tiny_model, pair):
    size = tiny_model.config.preprocess.image_size
    result = explain(pair["ref"], pair["dist"], model=tiny_model, method="occlusion", gate="off", grid=GRID)
    assert np.array_equal(result.reference, np.asarray(pair["ref_at_dist"]))
    assert_zero_outside_the_quadrant(result.heat)
    dist, ref_at_dist = as_float(pair["dist"]), as_float(pair["ref_at_dist"])
    cells = list(grid_cells(HEIGHT, WIDTH, GRID))
    restored, blackened = dist.repeat(len(cells), 1, 1, 1), dist.repeat(len(cells), 1, 1, 1)
    for index, (rows, cols) in enumerate(cells):
        restored[index, :, rows, cols] = ref_at_dist[:, rows, cols]
        blackened[index, :, rows, cols] = 0.0
    ref_square = resize_pad_here(pair["ref"], size)[None]
    base = scores(tiny_model, ref_square, dist[None])
    gains = scores(tiny_model, ref_square, restored) - base
    black_gains = scores(tiny_model, ref_square, blackened) - base
    for (rows, cols), gain, black_gain in zip(cells, gains.tolist(), black_gains.tolist(), strict=True):
        assert result.heat[rows, cols].sum() == pytest.approx(gain, abs=2e-5), (rows, cols)
        assert abs(gain - black_gain) > 1e-3  # a black reference would be caught in this cell


def test_integrated_gradients_start_from_the_independently_resized_reference(tiny_model, pair):
    size = tiny_model.config.preprocess.image_size
    result = explain(pair["ref"], pair["dist"], model=tiny_model, method="gradients", steps=16, batch_size=8)
    assert np.array_equal(result.reference, np.asarray(pair["ref_at_dist"]))
    assert_zero_outside_the_quadrant(result.heat)
    ref_square = resize_pad_here(pair["ref"], size)[None]
    dist, ref_at_dist = as_float(pair["dist"]), as_float(pair["ref_at_dist"])
    same, changed, black = scores(tiny_model, ref_square, torch.stack([ref_at_dist, dist, torch.zeros_like(dist)]))
    lost, lost_from_black = float(same - changed), float(black - changed)
    # Completeness: the map sums to the score lost along the path from the resized reference.
    assert result.heat.sum() == pytest.approx(lost, rel=0.05, abs=1e-3)
    assert abs(lost_from_black - lost) > 5 * (0.05 * abs(lost) + 1e-3)  # a black start would be caught


def test_a_float_tensor_reference_of_another_size_is_resized_on_its_own(tiny_model, pair):
    """Tensors take the torch path (within about 1/255 of PIL's), still each image on its own."""
    ref, dist = as_float(pair["ref"]), as_float(pair["dist"])
    result = explain(ref, dist, model=tiny_model, method="occlusion", gate="off", grid=GRID)
    difference = np.abs(result.reference.astype(int) - np.asarray(pair["ref_at_dist"], dtype=int))
    assert difference.max() <= 2 and difference.mean() < 0.5
    with torch.no_grad():
        assert result.score == pytest.approx(float(tiny_model(ref, dist, gate="off").score), abs=1e-5)
