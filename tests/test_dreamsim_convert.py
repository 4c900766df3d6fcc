"""`convert-dreamsim`: the authors' release (zip or folder) -> a weights folder (refusals: *_refusals.py).

The releases are written by `tests/dreamsim_release.py` (random full-size weights, peft's own
adapter files); each refusal is a `ConversionError` naming what is wrong, and one line with
status 2 on the command line. The distances of converted models are checked against the
authors' code in `tests/test_dreamsim_equivalence.py`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from dreamsim_convert_cases import (
    ADAPTER,
    CLIP_LORA,
    authors_perceptual_model,
    variant,
)
from dreamsim_release import (
    AUTHORS_LORA,
    authors_model,
    authors_vit,
    randomise,
    shared_release,
    zip_release,
)
from peft import LoraConfig, get_peft_model
from pickle_payload import CreatesAFile
from safetensors.torch import load_file

import semantic_iqa
from semantic_iqa.cli import main
from semantic_iqa.errors import ConversionError, WeightsOutputError
from semantic_iqa.metrics.dreamsim.convert import convert_dreamsim

pytest_plugins = ["dreamsim_convert_cases"]  # fixtures: clip_release, free_disk
pytestmark = pytest.mark.usefixtures("free_disk")


@pytest.fixture(scope="module")
def clip_weights(clip_release, tmp_path_factory) -> Path:
    weights = convert_dreamsim(clip_release, tmp_path_factory.mktemp("clip") / "weights")
    yield weights
    shutil.rmtree(weights, ignore_errors=True)


def stored(weights: Path, role: str) -> dict[str, torch.Tensor]:
    return load_file(weights / role / "model.safetensors")


def same_file(one: Path, other: Path, role: str = "clip") -> bool:
    return (one / role / "model.safetensors").read_bytes() == (other / role / "model.safetensors").read_bytes()


def test_zip_with_a_top_folder_and_the_unpacked_folder_give_identical_weights(clip_release, clip_weights, tmp_path):
    archive = zip_release(clip_release, tmp_path / "dreamsim_clip_vitb32_checkpoint.zip", top="models")
    weights = convert_dreamsim(archive, tmp_path / "from-zip")
    assert (weights / "clip" / "model.safetensors").read_bytes() == (
        clip_weights / "clip" / "model.safetensors"
    ).read_bytes()
    provenance = json.loads((weights / "config.json").read_text())["provenance"]
    assert provenance["model_type"] == "clip_vitb32"  # inferred from the adapter folder
    assert provenance["converted_from"] == archive.name
    assert provenance["source_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    sha = hashlib.sha256((clip_release / "clip_vitb32_pretrain.pth.tar").read_bytes()).hexdigest()
    assert provenance["files_sha256"]["clip_vitb32_pretrain.pth.tar"] == sha
    assert set(provenance["files_sha256"]) == {
        "clip_vitb32_pretrain.pth.tar",
        ADAPTER,
        f"{CLIP_LORA}/adapter_config.json",
    }
    lora = provenance["lora"]
    assert (lora["r"], lora["lora_alpha"], lora["target_modules"], lora["merged_layers"]) == (16, 0.5, ["qkv"], 12)
    assert "folded into pos_embed" in provenance["backbones"]["clip"]["patch_embed_bias"]


def test_the_merge_is_w_plus_alpha_over_r_b_a(clip_release, clip_weights):
    original = torch.load(clip_release / "clip_vitb32_pretrain.pth.tar", weights_only=True)["state_dict"]
    adapter = load_file(clip_release / ADAPTER)
    prefix = "base_model.model.extractor_list.0.model.blocks.4.attn.qkv"
    a, b = adapter[f"{prefix}.lora_A.weight"], adapter[f"{prefix}.lora_B.weight"]
    ours = stored(clip_weights, "clip")
    expected = original["blocks.4.attn.qkv.weight"].double() + 0.5 / 16 * (b.double() @ a.double())
    torch.testing.assert_close(ours["blocks.4.attn.qkv.weight"].double(), expected, rtol=0, atol=1e-7)
    assert (b @ a).abs().max() * 0.5 / 16 > 1e-4  # the LoRA term is far above that tolerance
    torch.testing.assert_close(ours["head.weight"], original["proj"].t(), rtol=0, atol=0)
    torch.testing.assert_close(ours["norm_pre.weight"], original["pos_drop.weight"], rtol=0, atol=0)
    folded = original["pos_embed"][0, 1:] + original["patch_embed.proj.bias"]
    torch.testing.assert_close(ours["pos_embed"][0, 1:], folded, rtol=0, atol=1e-7)
    torch.testing.assert_close(ours["pos_embed"][0, 0], original["pos_embed"][0, 0], rtol=0, atol=0)


def test_a_bin_adapter_saved_by_peft_gives_the_same_weights(clip_release, clip_weights, tmp_path):
    folder = variant(clip_release, tmp_path / "release", drop=(ADAPTER,))
    model, _ = authors_model(clip_release, "clip_vitb32")  # a PeftModel holding the release's adapter
    model.save_pretrained(str(folder / CLIP_LORA), safe_serialization=False)
    assert (folder / CLIP_LORA / "adapter_model.bin").is_file()
    weights = convert_dreamsim(folder, tmp_path / "weights")
    assert stored(weights, "clip")["blocks.7.attn.qkv.weight"].equal(
        stored(clip_weights, "clip")["blocks.7.attn.qkv.weight"]
    )


def test_rank_and_alpha_patterns_and_rslora_merge_as_peft_computes(clip_release, tmp_path):
    folder = variant(clip_release, tmp_path / "release", drop=(ADAPTER, f"{CLIP_LORA}/adapter_config.json"))
    patterns = {"rank_pattern": {"blocks.0.attn.qkv": 4}, "alpha_pattern": {"blocks.11.attn.qkv": 6.0}}
    with torch.random.fork_rng():
        torch.manual_seed(1)
        config = LoraConfig(**AUTHORS_LORA, **patterns, use_rslora=True, init_lora_weights=False)
        get_peft_model(authors_perceptual_model(clip_release), config).save_pretrained(str(folder / CLIP_LORA))
    weights = convert_dreamsim(folder, tmp_path / "weights")

    original = torch.load(clip_release / "clip_vitb32_pretrain.pth.tar", weights_only=True)["state_dict"]
    adapter, ours = load_file(folder / ADAPTER), stored(weights, "clip")
    for block, r, alpha in ((0, 4, 0.5), (5, 16, 0.5), (11, 16, 6.0)):  # s = alpha / sqrt(r) with rslora
        prefix = f"base_model.model.extractor_list.0.model.blocks.{block}.attn.qkv"
        a, b = adapter[f"{prefix}.lora_A.weight"].double(), adapter[f"{prefix}.lora_B.weight"].double()
        assert a.shape == (r, 768)
        expected = original[f"blocks.{block}.attn.qkv.weight"].double() + alpha / r**0.5 * (b @ a)
        torch.testing.assert_close(ours[f"blocks.{block}.attn.qkv.weight"].double(), expected, rtol=0, atol=1e-7)
    lora = json.loads((weights / "config.json").read_text())["provenance"]["lora"]
    assert lora | patterns == lora and lora["use_rslora"] is True

    theirs, _ = authors_model(folder, "clip_vitb32")  # peft reads the patterns as the converter did
    pixels = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    metric = semantic_iqa.create_metric("dreamsim", weights=weights, device="cpu")
    with torch.no_grad():
        assert float((metric.encode(pixels) - theirs.embed(pixels)).abs().max()) <= 1e-5


# -- refusals: each a ConversionError naming what is wrong, and one line with status 2 -------------


# -- DINO: which backbone, from where ------------------------------------------------------------


@pytest.fixture(scope="module")
def dino_release(request) -> Path:
    return shared_release(request, "dino_vitb16")


def _backbone(entry: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in entry.items() if k.startswith(prefix)}


def test_dino_backbone_is_the_file_given_then_the_hub_download_then_the_teacher(dino_release, tmp_path):
    checkpoint = torch.load(dino_release / "dino_vitb16_pretrain.pth", weights_only=True)
    teacher = _backbone(checkpoint["teacher"], "backbone.")
    student = _backbone(checkpoint["student"], "module.backbone.")
    key = "blocks.3.mlp.fc1.weight"  # not a LoRA target: stored as read
    assert not teacher[key].equal(student[key])

    weights = convert_dreamsim(dino_release, tmp_path / "teacher")
    assert stored(weights, "dino")[key].equal(teacher[key]) and "norm.weight" not in stored(weights, "dino")
    source = json.loads((weights / "config.json").read_text())["provenance"]["backbones"]["dino"]
    assert source["file"] == "dino_vitb16_pretrain.pth" and "teacher" in source["source"]
    assert "before it" in source["final_norm"]

    folder = variant(dino_release, tmp_path / "with-hub")  # torch.hub's download (here other tensors, to tell)
    (folder / "checkpoints").mkdir()
    torch.save(student, folder / "checkpoints" / "dino_vitbase16_pretrain.pth")
    weights = convert_dreamsim(folder, tmp_path / "hub")
    assert stored(weights, "dino")[key].equal(student[key])
    provenance = json.loads((weights / "config.json").read_text())["provenance"]
    assert provenance["backbones"]["dino"]["file"] == "checkpoints/dino_vitbase16_pretrain.pth"

    # DINO's own training checkpoint, given: its `args` is an argparse.Namespace, the one object allowed
    third = randomise(authors_vit(16), torch.Generator().manual_seed(9)).state_dict()
    given = tmp_path / "dino_vitbase16_full_checkpoint.pth"
    torch.save({"teacher": {f"backbone.{k}": v for k, v in third.items()}, "args": argparse.Namespace(lr=1.0)}, given)
    weights = convert_dreamsim(folder, tmp_path / "given", dino_backbone=given)
    assert stored(weights, "dino")[key].equal(third[key])
    provenance = json.loads((weights / "config.json").read_text())["provenance"]
    assert provenance["backbones"]["dino"]["source"] == "the file given (--dino-backbone)"
    assert provenance["files_sha256"][given.name] == hashlib.sha256(given.read_bytes()).hexdigest()


def test_a_dino_checkpoint_may_hold_a_namespace_and_nothing_else(dino_release, tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "dino.pth"
    torch.save({"teacher": {}, "args": argparse.Namespace(lr=1.0), "extra": CreatesAFile(marker)}, evil)
    with pytest.raises(ConversionError, match="dino.pth holds objects other than tensors"):
        convert_dreamsim(dino_release, tmp_path / "out", dino_backbone=evil)
    assert not marker.exists()


# -- the command line, end to end ----------------------------------------------------------------


def test_cli_end_to_end(clip_release, clip_weights, tmp_path, capsys):
    archive = zip_release(clip_release, tmp_path / "dreamsim_clip_vitb32_checkpoint.zip")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    argv = ["convert-dreamsim", str(archive), "--out", str(out)]
    with pytest.raises(WeightsOutputError):
        convert_dreamsim(archive, out)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and (out / "notes.txt").read_text() == "my notes"

    assert main([*argv, "--overwrite", "--model-type", "clip_vitb32"]) == 0
    assert f"-> {out}" in capsys.readouterr().out
    assert (out / "clip" / "model.safetensors").read_bytes() == (
        clip_weights / "clip" / "model.safetensors"
    ).read_bytes()
    examples = Path(__file__).resolve().parent.parent / "examples"
    score = ["score", str(examples / "ref.png"), str(examples / "dist.png"), "--metric", "dreamsim", "--json"]
    assert main([*score, "--weights", str(out), "--device", "cpu"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 < record["score"] < 2.0
