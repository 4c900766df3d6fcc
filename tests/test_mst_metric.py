"""MST-CLIPIQA through the shared seam: weights folders, `create_metric`, the scoring loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import ImageFilter

import semantic_iqa
from semantic_iqa.errors import InvalidInputError, InvalidOptionError, NoPublishedWeightsError
from semantic_iqa.metrics.mst_clipiqa import MSTCLIPIQA, build_random_mst_clipiqa
from semantic_iqa.metrics.mst_clipiqa.preprocess import load_short_side_center_cropped

PROMPTS = ["a red fox in the snow, photorealistic", "an oil painting of a lighthouse at dusk"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mst")
    return {
        variant: build_random_mst_clipiqa(variant, "tiny", seed=0).save_pretrained(root / variant)
        for variant in ("A", "B")
    }


@pytest.fixture(scope="module")
def images(photo, tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    variants = [photo, photo.filter(ImageFilter.GaussianBlur(4)), photo.rotate(90).resize((300, 180))]
    paths = []
    for index, image in enumerate(variants):
        paths.append(root / f"{index}.png")
        image.save(paths[-1])
    return paths


def test_both_variants_round_trip_through_a_weights_folder(folders, images):
    for variant, folder in folders.items():
        config = json.loads((folder / "config.json").read_text())
        assert (config["format"], config["metric"], config["variant"]) == ("semantic-iqa", "mst_clipiqa", variant)
        assert [e["file"] for e in config["head_files"]] == ["heads/head.safetensors"]
        stored = {Path(e["file"]).parts[0] for e in config["backbone_files"]}
        assert stored == ({"coarse", "fine"} if variant == "A" else {"coarse", "fine", "text"})
        name = "mst_clipiqa" if variant == "A" else "mst_clipiqa_prompt"
        metric = semantic_iqa.create_metric(name, weights=folder, device="cpu")
        original = build_random_mst_clipiqa(variant, "tiny", seed=0)
        prompts = None if variant == "A" else [PROMPTS[0]] * len(images)
        pixels = torch.stack([load_short_side_center_cropped(p) for p in images])
        with torch.no_grad():
            expected = original.score_pixels(pixels, prompts).score
        scores = metric.predict(images, prompts, batch_size=2).score
        torch.testing.assert_close(scores, expected, rtol=0, atol=1e-5)
        assert scores.max() - scores.min() > 0.05, "the tiny model must tell these images apart"


def test_the_registry_entries_pick_their_variant(folders):
    with pytest.raises(InvalidOptionError, match="variant A, not B"):
        semantic_iqa.create_metric("mst_clipiqa_prompt", weights=folders["A"], device="cpu")
    info = {m.name: m for m in semantic_iqa.list_metrics()}
    assert (info["mst_clipiqa"].kind, info["mst_clipiqa"].score_range) == ("NR", (1.0, 5.0))
    assert info["mst_clipiqa_prompt"].inputs == ("image", "prompt")
    with pytest.raises(NoPublishedWeightsError, match="authors released no weights.*convert-mst-clipiqa"):
        semantic_iqa.create_metric("mst_clipiqa", device="cpu")


def test_prompts_in_the_scoring_loop_stay_with_their_images(folders, images):
    metric = semantic_iqa.create_metric("mst_clipiqa_prompt", weights=folders["B"], device="cpu")
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0] + " " * 3 + "with a very long tail " * 8]
    together = metric.predict(images, prompts, batch_size=3).score
    alone = torch.cat([metric.predict(images[i], [prompts[i]]).score for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)  # padding keys are masked
    swapped = metric.predict(images[:2], prompts[:2][::-1]).score
    assert (swapped - together[:2]).abs().max() > 1e-3, "the prompt must matter"
    with pytest.raises(InvalidInputError, match="needs the generation prompt"):
        metric.predict(images)


def test_module_call_keeps_gradients_on_any_size(folders):
    metric: MSTCLIPIQA = semantic_iqa.create_metric("mst_clipiqa", weights=folders["A"], device="cpu")
    images = torch.rand(2, 3, 150, 260, requires_grad=True)
    metric(images).score.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
