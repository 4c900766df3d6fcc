"""Explanation maps: where the score was lost, exact to the metric (tiny random models, crafted pairs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from semantic_iqa.errors import InvalidInputError, InvalidOptionError
from semantic_iqa.explanation import explain
from semantic_iqa.explanation.attribution import grid_cells
from semantic_iqa.metrics.mst_clipiqa.tiny import build_random_mst_clipiqa
from tests.conftest import EXAMPLES

# Non-square, so a transposed map has the wrong shape; the change sits top RIGHT, so a map
# flipped in either direction puts its mass in an unchanged quadrant.
HEIGHT, WIDTH = 160, 240
QUADRANT = (slice(0, HEIGHT // 2), slice(WIDTH // 2, WIDTH))


@pytest.fixture(scope="module")
def reference() -> torch.Tensor:
    photo = Image.open(EXAMPLES / "ref.png").convert("RGB").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float() / 255


def with_noise_in_quadrant(image: torch.Tensor, amplitude: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(3, HEIGHT // 2, WIDTH // 2, generator=torch.Generator().manual_seed(seed))
    changed = image.clone()
    changed[:, QUADRANT[0], QUADRANT[1]] = (changed[:, QUADRANT[0], QUADRANT[1]] + amplitude * noise).clamp(0, 1)
    return changed


@pytest.mark.parametrize("method", ["occlusion", "gradients"])
def test_a_change_in_one_quadrant_is_attributed_to_that_quadrant(tiny_model, reference, method):
    distorted = with_noise_in_quadrant(reference, 0.3)
    result = explain(reference, distorted, model=tiny_model, method=method, gate="off", grid=4, steps=8)
    assert result.heat.shape == (HEIGHT, WIDTH) and result.heat.dtype == np.float32
    mass = np.abs(result.heat)
    assert mass.sum() > 0
    assert mass[QUADRANT].sum() / mass.sum() > 0.99
    assert result.image.shape == result.reference.shape == (HEIGHT, WIDTH, 3)
    assert result.method == method


@pytest.mark.parametrize("method", ["occlusion", "gradients"])
def test_the_identity_pair_gives_an_all_zero_map(tiny_model, reference, method):
    result = explain(reference, reference.clone(), model=tiny_model, method=method, grid=4, steps=4)
    assert not result.heat.any()


def test_integrated_gradients_sum_to_the_score_lost(tiny_model, reference):
    # A small change keeps the path nearly straight for the rough random model, so the
    # midpoint rule with 16 points is close; the completeness property then pins the sign,
    # the 1/steps scale and the path (a map of the wrong sign or size is off by 100 %+).
    distorted = with_noise_in_quadrant(reference, 0.03, seed=1)
    with torch.no_grad():
        same = tiny_model(reference, reference, gate="off").score
        changed = tiny_model(reference, distorted, gate="off").score
    lost = float(same - changed)
    assert abs(lost) > 0.01  # the tiny model must tell the two apart, or the check is empty
    result = explain(reference, distorted, model=tiny_model, method="gradients", steps=16)
    assert result.heat.sum() == pytest.approx(lost, rel=0.05)


def test_an_occlusion_cell_holds_the_score_that_restoring_it_gains(tiny_model, reference):
    distorted = with_noise_in_quadrant(reference, 0.5, seed=2)
    result = explain(reference, distorted, model=tiny_model, method="occlusion", gate="hard", grid=4)
    cells = [cell for cell in grid_cells(HEIGHT, WIDTH, 4) if result.heat[cell].any()]
    assert len(cells) == 4  # the quadrant is 2 x 2 of the 4 x 4 cells
    rows, cols = cells[-1]
    restored = distorted.clone()
    restored[:, rows, cols] = reference[:, rows, cols]
    with torch.no_grad():
        gain = float(tiny_model(reference, restored).score - tiny_model(reference, distorted).score)
    area = (rows.stop - rows.start) * (cols.stop - cols.start)
    assert result.heat[rows, cols] == pytest.approx(
        np.full((rows.stop - rows.start, cols.stop - cols.start), gain / area), abs=1e-6
    )
    with torch.no_grad():
        assert result.score == pytest.approx(float(tiny_model(reference, distorted).score), abs=1e-5)


def test_the_reference_may_have_another_size(tiny_model, reference):
    small_ref = torch.nn.functional.interpolate(reference[None], size=(80, 120), mode="bilinear")[0]
    result = explain(small_ref, with_noise_in_quadrant(reference, 0.3), model=tiny_model, method="occlusion", grid=2)
    assert result.heat.shape == (HEIGHT, WIDTH) and result.reference.shape == (HEIGHT, WIDTH, 3)


def test_files_and_caption(tiny_model, reference, tmp_path):
    result = explain(reference, with_noise_in_quadrant(reference, 0.3), model=tiny_model, method="occlusion", grid=2)
    assert result.random_weights and result.caption().startswith("RANDOM WEIGHTS")
    assert "fold spread" in result.caption() and "gate hard" in result.caption()
    figure, array = result.save(tmp_path / "map.png")
    assert np.array_equal(np.load(array), result.heat)
    with Image.open(figure) as drawn:
        assert drawn.width > 600
    with pytest.raises(InvalidOptionError, match="exist"):
        result.save(tmp_path / "map.png")
    result.save(tmp_path / "map.png", overwrite=True)
    with pytest.raises(InvalidOptionError, match="written as one of"):
        result.save(tmp_path / "map.txt")


def test_bad_calls_are_refused_by_name(tiny_model, reference):
    with pytest.raises(InvalidInputError, match="2 image"):
        explain(reference, model=tiny_model)
    with pytest.raises(InvalidOptionError, match="method"):
        explain(reference, reference, model=tiny_model, method="saliency")
    with pytest.raises(InvalidOptionError, match="grid"):
        explain(reference, reference, model=tiny_model, grid=0)
    with pytest.raises(InvalidInputError, match="one image"):
        explain(torch.stack([reference, reference]), reference, model=tiny_model)


@pytest.fixture(scope="module")
def tiny_mst():
    return build_random_mst_clipiqa("A", "tiny", seed=0)


def test_no_reference_occlusion_is_exact_to_the_metric(tiny_mst, reference):
    result = explain(reference, metric="mst_clipiqa", model=tiny_mst, grid=2, baseline="mean")
    assert result.heat.shape == (HEIGHT, WIDTH) and result.reference is None and result.gated is None
    with torch.no_grad():
        base = float(tiny_mst(reference[None]).score)
        rows, cols = QUADRANT
        filled = reference.clone()
        filled[:, rows, cols] = reference[:, rows, cols].mean(dim=(1, 2), keepdim=True)
        gain = float(tiny_mst(filled[None]).score) - base
    assert result.score == pytest.approx(base, abs=1e-5)
    assert result.heat[rows, cols].sum() == pytest.approx(gain, abs=1e-5)
    assert abs(gain) > 1e-4  # the random model must react to the change, or the check is empty


def test_no_reference_flat_image_gives_an_all_zero_map(tiny_mst):
    flat = torch.full((3, 64, 96), 0.4)
    for baseline in ("mean", "blur"):
        assert not explain(flat, metric="mst_clipiqa", model=tiny_mst, grid=4, baseline=baseline).heat.any()


def test_no_reference_refusals(tiny_mst, reference):
    with pytest.raises(InvalidOptionError, match="no reference"):
        explain(reference, metric="mst_clipiqa", model=tiny_mst, method="gradients")
    with pytest.raises(InvalidInputError, match="1 image"):
        explain(reference, reference, metric="mst_clipiqa", model=tiny_mst)
    with pytest.raises(InvalidInputError, match="no prompt"):
        explain(reference, metric="mst_clipiqa", model=tiny_mst, prompt="a cat")
    with pytest.raises(InvalidOptionError, match="variant"):  # a variant-A model under the variant-B entry
        explain(reference, metric="mst_clipiqa_prompt", model=tiny_mst, prompt="a cat")


def test_the_prompt_variant_needs_its_prompt(reference):
    model = build_random_mst_clipiqa("B", "tiny", seed=0)
    with pytest.raises(InvalidInputError, match="prompt"):
        explain(reference, metric="mst_clipiqa_prompt", model=model)
    result = explain(reference, metric="mst_clipiqa_prompt", model=model, prompt="a woman in a space suit", grid=2)
    assert result.heat.shape == (HEIGHT, WIDTH)


def test_the_explain_command_writes_the_figure_and_the_map(tiny_dir, reference, tmp_path, capsys):
    from semantic_iqa.cli import main

    ref_path, dist_path = tmp_path / "ref.png", tmp_path / "dist.png"
    Image.fromarray((reference * 255).round().byte().permute(1, 2, 0).numpy()).save(ref_path)
    Image.fromarray((with_noise_in_quadrant(reference, 0.3) * 255).round().byte().permute(1, 2, 0).numpy()).save(
        dist_path
    )
    out = tmp_path / "maps" / "map.png"
    out.parent.mkdir()
    argv = ["explain", str(ref_path), str(dist_path), "--out", str(out), "--weights", str(tiny_dir)]
    assert main([*argv, "--method", "occlusion", "--grid", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    heat = np.load(out.with_suffix(".npy"))
    assert heat.shape == (HEIGHT, WIDTH) and np.abs(heat).sum() > 0
    assert np.abs(heat[QUADRANT]).sum() == pytest.approx(np.abs(heat).sum(), rel=1e-5)
    assert summary["random_weights"] and summary["method"] == "occlusion" and out.exists()
    # The score is the one `score` gives for the same files (the metric's own decoding).
    assert main(["score", str(ref_path), str(dist_path), "--weights", str(tiny_dir)]) == 0
    assert summary["score"] == pytest.approx(float(capsys.readouterr().out), abs=1e-4)
    # Nothing is replaced unasked, and the refusal comes before any model work.
    before = out.read_bytes()
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*argv[:3], "--out", str(tmp_path / "map.bmp"), "--weights", str(tiny_dir)]) == 2
    assert "written as one of" in capsys.readouterr().err


def test_a_phone_photo_is_explained_upright(tiny_model, photo, tmp_path):
    """A JPEG stored sideways with EXIF orientation 6: the map is at the upright size, and
    against its hand-rotated twin it is all zero (without the rotation every pixel would differ)."""
    stored = photo.crop((0, 40, 256, 200))  # 256 wide, 160 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view", as phone cameras write it
    sideways = tmp_path / "sideways.jpg"
    stored.save(sideways, quality=95, exif=exif)
    with Image.open(sideways) as decoded:
        stored_pixels = np.asarray(decoded.convert("RGB"))
    upright = tmp_path / "upright.png"
    Image.fromarray(np.rot90(stored_pixels, -1).copy()).save(upright)  # orientation 6 = a clockwise turn
    result = explain(upright, sideways, model=tiny_model, method="occlusion", grid=4)
    assert result.heat.shape == (256, 160)
    assert not result.heat.any()
