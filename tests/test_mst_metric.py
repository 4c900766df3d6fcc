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


def run_cli(*argv: str) -> int:
    from semantic_iqa.cli import main

    return main(list(argv))


def test_convert_command_writes_a_folder_that_scores_as_the_checkpoint(tmp_path, images, capsys):
    from mst_reference import authors_checkpoint
    from test_mst_convert import TINY_SIZES

    from semantic_iqa.metrics.mst_clipiqa.convert import convert_mst_state_dict

    state, _ = authors_checkpoint("B", seed=5)
    checkpoint = tmp_path / "best_model_variant_B.pth"
    torch.save({"model_state_dict": state}, checkpoint)
    # The tiny towers' sizes come from a folder holding encoders of those sizes.
    sizes = convert_mst_state_dict(state, "B", **TINY_SIZES).save_pretrained(tmp_path / "sizes")
    out = tmp_path / "converted"
    assert (
        run_cli(
            "convert-mst-clipiqa",
            str(checkpoint),
            "--variant",
            "B",
            "--out",
            str(out),
            "--architecture-from",
            str(sizes),
        )
        == 0
    )
    expected = convert_mst_state_dict(state, "B", **TINY_SIZES).predict(images, [PROMPTS[0]] * 3).score
    metric = semantic_iqa.create_metric("mst_clipiqa_prompt", weights=out, device="cpu")
    torch.testing.assert_close(metric.predict(images, [PROMPTS[0]] * 3).score, expected, rtol=0, atol=1e-5)
    assert json.loads((out / "config.json").read_text())["provenance"]["converted_from"] == str(checkpoint)


def test_score_and_score_dir_commands_for_no_reference_metrics(folders, images, tmp_path, capsys):
    assert run_cli("score", "--metric", "mst_clipiqa", *map(str, images[:2]), "--weights", str(folders["A"])) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = semantic_iqa.create_metric("mst_clipiqa", weights=folders["A"], device="cpu").predict(images[:2]).score
    assert [float(line.split("\t")[0]) for line in lines] == pytest.approx(expected.tolist(), abs=1e-4)

    prompts = tmp_path / "prompts.csv"
    prompts.write_text(
        "image_name,prompt\n" + "".join(f'{p.name},"{PROMPTS[i % 2]}, at night"\n' for i, p in enumerate(images))
    )
    out = tmp_path / "scores.csv"
    folder = images[0].parent
    assert (
        run_cli(
            "score-dir",
            str(folder),
            "--metric",
            "mst_clipiqa_prompt",
            "--prompts",
            str(prompts),
            "--out",
            str(out),
            "--weights",
            str(folders["B"]),
            "--workers",
            "0",
        )
        == 0
    )
    import csv

    rows = list(csv.DictReader(out.open()))
    metric = semantic_iqa.create_metric("mst_clipiqa_prompt", weights=folders["B"], device="cpu")
    expected = metric.predict(images, [f"{PROMPTS[i % 2]}, at night" for i in range(3)]).score
    assert [r["id"] for r in rows] == [p.stem for p in images]
    assert [r["image"] for r in rows] == [str(p) for p in images]
    assert [r["prompt"] for r in rows] == [f"{PROMPTS[i % 2]}, at night" for i in range(3)]
    assert [r["status"] for r in rows] == ["ok"] * 3 and "gate_mean" in rows[0]
    assert [float(r["score"]) for r in rows] == pytest.approx(expected.tolist(), abs=1e-5)

    # Wrong combinations are one-line errors.
    assert (
        run_cli("score", "--metric", "mst_clipiqa", str(images[0]), "--gate", "soft", "--weights", str(folders["A"]))
        == 2
    )
    assert run_cli("score", "--metric", "dss_sqa", str(images[0]), "--weights", str(folders["A"])) == 2
    assert (
        run_cli(
            "score-dir",
            str(folder),
            "--metric",
            "mst_clipiqa_prompt",
            "--out",
            str(out) + "2",
            "--weights",
            str(folders["B"]),
        )
        == 2
    )
    errors = capsys.readouterr().err
    assert "--gate is a dss_sqa option" in errors and "give REF DIST" in errors and "--prompts prompts.csv" in errors


def test_make_tiny_command_for_each_metric(tmp_path):
    for metric, variant in (("mst_clipiqa", "A"), ("mst_clipiqa_prompt", "B")):
        assert run_cli("make-tiny", str(tmp_path / metric), "--metric", metric) == 0
        config = json.loads((tmp_path / metric / "config.json").read_text())
        assert (config["metric"], config["variant"]) == ("mst_clipiqa", variant)


def test_each_variant_reports_its_own_registry_entry(folders):
    a = semantic_iqa.create_metric("mst_clipiqa", weights=folders["A"], device="cpu")
    b = semantic_iqa.create_metric("mst_clipiqa_prompt", weights=folders["B"], device="cpu")
    assert (a.info.name, a.info.score_range) == ("mst_clipiqa", (1.0, 5.0))
    assert (b.info.name, b.info.score_range) == ("mst_clipiqa_prompt", (None, None))


def test_train_command_for_mst_clipiqa_on_the_agiqa_layout(folders, photo, tmp_path, capsys):
    from agiqa_synthetic import make_agiqa

    data = make_agiqa(tmp_path / "AGIQA-3K", photo, count=20)
    out = tmp_path / "trained"
    argv = [
        "train",
        "--metric",
        "mst_clipiqa_prompt",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--backbones-from",
        str(folders["B"]),
        "--cache",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
        "--workers",
        "0",
    ]
    assert run_cli(*argv) == 0
    report = json.loads((out / "training" / "report.json").read_text())
    assert report["validation_images"] == 4 and report["train_images"] == 16  # the 80/20 split of 20
    model = semantic_iqa.create_metric("mst_clipiqa_prompt", weights=out, device="cpu")
    assert model.config.provenance["labels"] == "mos_align"
    # A DSS-SQA option is refused for this metric, before any work.
    assert run_cli(*argv[:6], str(tmp_path / "other"), "--folds", "3") == 2
    assert "--folds: not an option of mst_clipiqa_prompt's training" in capsys.readouterr().err


def test_bf16_towers_score_close_to_float32(folders, images):
    """bf16 towers with float32 layers (as DSS-SQA's precision option) run, and really run in bf16.

    The tiny towers' 10x initialisation amplifies bf16 rounding (up to 0.35 here), so this is a
    plumbing check (dtypes, no crash, scores move but stay within the images' spread), not an
    accuracy figure: that belongs to the full-size benchmark.
    """
    for name, variant in (("mst_clipiqa", "A"), ("mst_clipiqa_prompt", "B")):
        prompts = None if variant == "A" else [PROMPTS[0]] * len(images)
        full = semantic_iqa.create_metric(name, weights=folders[variant], device="cpu").predict(images, prompts).score
        half = semantic_iqa.create_metric(name, weights=folders[variant], device="cpu", precision="bf16")
        assert half.precision == "bf16" and half.fusion.W_h.weight.dtype == torch.float32
        scores = half.predict(images, prompts).score
        spread = float(full.max() - full.min())
        assert 0 < float((scores - full).abs().max()) < spread, (scores, full)
