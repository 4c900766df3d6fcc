"""The authors' inference pipelines rebuilt for the speed comparison (benchmarks/authors_pipelines.py).

A speed-up over a reconstruction means something only if the reconstruction computes what the
authors' code computes: at tiny size (the same timm/transformers classes), loaded with our
random model's tensors, it must give our scores on pairs the gate vetoes and pairs it passes,
run every backbone once per fold and image, and keep the authors' checkpoint layout.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter, ImageOps

from semantic_iqa.metrics.dss_sqa.tiny import build_random_model
from semantic_iqa.metrics.mst_clipiqa.convert import convert_mst_state_dict
from semantic_iqa.metrics.mst_clipiqa.tiny import RANDOM_PRESETS, build_random_mst_clipiqa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import authors_pipelines as authors  # noqa: E402
from benchmarks import authors_speed  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def distortions(photo: Image.Image) -> list[Image.Image]:
    """Small images of varied content: the tiny DSS model vetoes some as pairs with `photo` (cos < 0.4)."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8))
    return [
        photo.filter(ImageFilter.GaussianBlur(1)),
        photo.filter(ImageFilter.GaussianBlur(3)),
        ImageOps.invert(photo),
        photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        noise,
        photo.rotate(90),
        ImageOps.grayscale(photo).convert("RGB"),
        photo.resize((40, 30)),
    ]


@pytest.fixture(scope="module")
def small_photo(photo) -> Image.Image:
    return photo.resize((100, 75))


@pytest.fixture(scope="module")
def dss():
    ours = build_random_model("tiny", seed=0)
    return ours, authors.authors_dss_from(ours, "tiny")


def test_authors_dss_pipeline_gives_our_scores_with_the_gate_and_the_fold_mean(dss, small_photo):
    ours, theirs = dss
    dists = distortions(small_photo)
    refs = [small_photo] * len(dists)
    expected = ours.predict(refs, dists, batch_size=3)
    # The data tells a skipped gate (vetoed pairs score ~0, unvetoed ones 1-4) and the fold
    # mean of scores from a mean of logits or probabilities (the folds disagree by about 1).
    assert 0 < int(expected.gated.sum()) < len(dists)
    assert expected.score[expected.gated].max() < 1e-3 < 1.5 < expected.score[~expected.gated].min()
    assert expected.fold_std[~expected.gated].min() > 0.5
    got = theirs(refs, dists, batch_size=3)
    torch.testing.assert_close(got, expected.score, atol=1e-4, rtol=0)
    # A last, shorter batch and batches of one give the same scores.
    torch.testing.assert_close(theirs(refs, dists, batch_size=1), got, atol=1e-5, rtol=0)


def test_every_authors_fold_runs_both_backbones_on_both_images(dss, small_photo):
    ours, theirs = dss
    fold = theirs.folds[0]
    assert all(f.structure_backbone is fold.structure_backbone for f in theirs.folds)  # one copy in memory...
    calls = {"structure": 0, "clip": 0}
    hooks = [
        fold.structure_backbone.patch_embed.register_forward_hook(
            lambda *_: calls.__setitem__("structure", calls["structure"] + 1)
        ),
        fold.clip_backbone.register_forward_hook(lambda *_: calls.__setitem__("clip", calls["clip"] + 1)),
    ]
    try:
        theirs([small_photo] * 3, distortions(small_photo)[:3], batch_size=8)
    finally:
        for hook in hooks:
            hook.remove()
    # ...run by each of the 5 folds on the references and on the distorted images: 10 passes each.
    assert calls == {"structure": 2 * ours.config.num_folds, "clip": 2 * ours.config.num_folds}


def test_dss_fold_checkpoints_have_the_authors_layout(dss):
    ours, _ = dss
    states = authors.dss_checkpoint_states(ours)
    assert len(states) == ours.config.num_folds == 5
    heads = {key for key in states[0] if not key.startswith(("structure_backbone.", "clip_backbone."))}
    assert heads == {
        *(f"bottleneck.0.{n}" for n in ("weight", "bias")),
        *(f"bottleneck.1.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")),
        *(f"head.{i}.{n}" for i in (0, 3) for n in ("weight", "bias")),
        "score_weights",
    }
    assert states[0]["bottleneck.0.weight"].shape == (256, 3 * 32 + 3 * 32 + 1)
    assert not torch.equal(states[0]["head.3.weight"], states[1]["head.3.weight"])  # each fold its own head
    assert torch.equal(
        states[0]["clip_backbone.post_layernorm.weight"], states[4]["clip_backbone.post_layernorm.weight"]
    )


@pytest.fixture(scope="module")
def mst_images(photo) -> list[Image.Image]:
    """Landscape, portrait, smaller than 224 (upscaled), and distorted copies: scores spread over ~1.5."""
    landscape = photo.resize((500, 375))
    return [
        landscape,
        photo.resize((300, 400)),
        photo.resize((120, 90)),
        landscape.filter(ImageFilter.GaussianBlur(4)),
        ImageOps.invert(landscape),
        landscape.rotate(45),
    ]


@pytest.fixture(scope="module")
def mst():
    ours = build_random_mst_clipiqa("A", "tiny", seed=0)
    return ours, authors.authors_mst_from(ours, "tiny")


def test_authors_mst_pipeline_gives_our_scores(mst, mst_images):
    ours, theirs = mst
    expected = ours.predict(mst_images, batch_size=4).score
    assert float(expected.max() - expected.min()) > 1.0  # a wrong crop, normalisation or softmax shows
    torch.testing.assert_close(theirs(mst_images, batch_size=4), expected, atol=1e-4, rtol=0)


def test_authors_mst_model_is_the_layout_our_converter_reads(mst, mst_images):
    ours, theirs = mst
    sizes = RANDOM_PRESETS["tiny"]
    converted = convert_mst_state_dict(
        theirs.model.state_dict(),
        "A",
        coarse_config=sizes["coarse"],
        fine_config=sizes["fine"],
        text_config=sizes["text"],
    )
    torch.testing.assert_close(converted.predict(mst_images).score, theirs(mst_images), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="variant A"):
        authors.authors_mst_from(build_random_mst_clipiqa("B", "tiny", seed=0), "tiny")


@pytest.mark.parametrize(("metric", "unit"), [("dss_sqa", "pair"), ("mst_clipiqa", "image")])
def test_speed_script_prints_the_comparison(metric, unit, capsys):
    result = authors_speed.main(
        ["--metric", metric, "--pairs", "3", "--repeats", "1", "--batch-size", "2", "--preset", "tiny"]
    )
    printed = capsys.readouterr().out
    rows = result["rows"]
    assert [(r["pipeline"].split()[0], r["precision"]) for r in rows] == [
        ("authors'", "fp32"),
        ("ours", "fp32"),
        ("ours", "bf16 backbones"),
    ]
    assert all(r["scores"].shape == (3,) and r["s_per_item"] > 0 for r in rows)
    assert result["equivalent"] and result["max_abs_diff"] < 1e-4
    assert float((rows[2]["scores"] - rows[1]["scores"]).abs().max()) > 1e-4  # bf16 did run in bf16
    assert f"| s/{unit} |" in printed and "RANDOM weights (tiny-size" in printed
    assert "native bf16 flags:" in printed and f"threads {torch.get_num_threads()}" in printed
    assert "authors' fp32 vs ours fp32: max |score diff| =" in printed and ": OK" in printed


def test_cpu_description_names_native_bf16_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test Xeon\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n")
    assert authors_speed.cpu_description(info) == (
        "Test Xeon; native bf16 flags: amx_bf16, amx_tile (of avx512_bf16, amx_bf16, amx_tile)"
    )
    info.write_text("model name\t: Test EPYC\nflags\t\t: fpu avx2 avx512f\n")
    assert authors_speed.cpu_description(info).startswith("Test EPYC; native bf16 flags: none")
    assert authors_speed.cpu_description(tmp_path / "absent").startswith("unknown CPU")
