"""`convert-dreamsim`: the authors' release (zip or folder) -> a weights folder; what it refuses, and why.

The releases are written by `tests/dreamsim_release.py` (random full-size weights, peft's own
adapter files); each refusal is a `ConversionError` naming what is wrong, and one line with
status 2 on the command line. The distances of converted models are checked against the
authors' code in `tests/test_dreamsim_equivalence.py`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from dreamsim.config import dreamsim_args
from dreamsim.model import PerceptualModel
from dreamsim_release import (
    AUTHORS_LORA,
    authors_model,
    authors_vit,
    dino_hub,
    randomise,
    shared_release,
    zip_release,
)
from peft import IA3Config, LoraConfig, get_peft_model
from pickle_payload import CreatesAFile
from safetensors.torch import load_file, save_file

import semantic_iqa
from semantic_iqa.cli import main
from semantic_iqa.errors import ConversionError, WeightsOutputError
from semantic_iqa.metrics.dreamsim.convert import convert_dreamsim

CLIP_LORA = "clip_vitb32_single_lora"
ADAPTER = f"{CLIP_LORA}/adapter_model.safetensors"


@pytest.fixture(autouse=True)
def free_disk(tmp_path):
    """Each test's converted folders and zips are hundreds of MB: removed after it."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def clip_release(request) -> Path:
    return shared_release(request, "clip_vitb32")


@pytest.fixture(scope="module")
def clip_weights(clip_release, tmp_path_factory) -> Path:
    weights = convert_dreamsim(clip_release, tmp_path_factory.mktemp("clip") / "weights")
    yield weights
    shutil.rmtree(weights, ignore_errors=True)


def variant(release: Path, folder: Path, *, drop: tuple[str, ...] = ()) -> Path:
    """A copy of `release` to edit: backbone files linked, `*_lora` folders copied."""
    for file in sorted(release.rglob("*")):
        name = file.relative_to(release).as_posix()
        if not file.is_file() or name in drop:
            continue
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if "_lora/" in name:
            shutil.copy(file, target)
        else:
            os.symlink(file, target)
    return folder


def edit_config(folder: Path, lora: str = CLIP_LORA, **changes: object) -> None:
    path = folder / lora / "adapter_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def edit_tensors(folder: Path, edit) -> None:
    tensors = load_file(folder / ADAPTER)
    edit(tensors)
    save_file(tensors, folder / ADAPTER, metadata={"format": "pt"})


def stored(weights: Path, role: str) -> dict[str, torch.Tensor]:
    return load_file(weights / role / "model.safetensors")


def same_file(one: Path, other: Path, role: str = "clip") -> bool:
    return (one / role / "model.safetensors").read_bytes() == (other / role / "model.safetensors").read_bytes()


def authors_perceptual_model(folder: Path, model_type: str = "clip_vitb32") -> PerceptualModel:
    with dino_hub(folder):
        return PerceptualModel(**dreamsim_args["model_config"][model_type], device="cpu", load_dir=str(folder))


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


def _small_clip_file(folder: Path, **extra: object) -> Path:
    (folder / "clip_vitb32_pretrain.pth.tar").unlink()
    torch.save({"state_dict": {"proj": torch.zeros(768, 512)}, **extra}, folder / "clip_vitb32_pretrain.pth.tar")
    return folder


def _not_a_zip(release: Path, folder: Path) -> Path:
    path = folder.with_suffix(".zip")
    path.write_bytes(b"PK\x03\x04 and then no zip at all")
    return path


def _damaged_zip(release: Path, folder: Path) -> Path:
    """A zip whose adapter_config.json bytes were altered after writing (its CRC no longer matches)."""
    path = zip_release(release, folder.with_suffix(".zip"), skip=("clip_vitb32_pretrain.pth.tar",))
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"peft_type": "LORA"', b'"peft_type": "LORB"', 1))
    return path


def _ia3_adapter(release: Path, folder: Path) -> Path:
    folder = variant(release, folder, drop=(ADAPTER, f"{CLIP_LORA}/adapter_config.json"))
    config = IA3Config(target_modules=["qkv"], feedforward_modules=[])
    get_peft_model(authors_perceptual_model(release), config).save_pretrained(str(folder / CLIP_LORA))
    return folder


def _missing_backbone_tensor(release: Path, folder: Path) -> Path:
    folder = variant(release, folder)
    raw = torch.load(release / "clip_vitb32_pretrain.pth.tar", weights_only=True)
    del raw["state_dict"]["blocks.11.mlp.fc2.bias"]
    (folder / "clip_vitb32_pretrain.pth.tar").unlink()
    torch.save(raw, folder / "clip_vitb32_pretrain.pth.tar")
    return folder


def _config(**changes):
    def make(release: Path, folder: Path) -> Path:
        folder = variant(release, folder)
        edit_config(folder, **changes)
        return folder

    return make


def _tensors(edit):
    def make(release: Path, folder: Path) -> Path:
        folder = variant(release, folder)
        edit_tensors(folder, edit)
        return folder

    return make


def _folder(edit):
    def make(release: Path, folder: Path) -> Path:
        folder = variant(release, folder)
        edit(folder)
        return folder

    return make


QKV = "base_model.model.extractor_list.0.model.blocks.{}.attn.qkv.lora_{}.weight"
LORA_PAIR = {"lora_A.weight": torch.zeros(16, 768), "lora_B.weight": torch.zeros(768, 16)}


def _add(prefix: str):
    return lambda tensors: tensors.update({f"{prefix}.{k}": v for k, v in LORA_PAIR.items()})


CASES = {
    "zip-missing-member": (
        lambda release, folder: zip_release(
            release, folder.with_suffix(".zip"), top="models", skip=("clip_vitb32_pretrain.pth.tar",)
        ),
        r"the zip .*\.zip has no models/clip_vitb32_pretrain\.pth\.tar",
    ),
    "unreadable-zip": (_not_a_zip, "neither a folder nor a readable zip"),
    "damaged-zip-member": (_damaged_zip, r"cannot read .*\.zip:clip_vitb32_single_lora/adapter_config\.json: Bad CRC"),
    "no-adapter-weights": (lambda r, f: variant(r, f, drop=(ADAPTER,)), f"has no {ADAPTER}"),
    "no-adapter": (
        lambda r, f: variant(r, f, drop=(ADAPTER, f"{CLIP_LORA}/adapter_config.json")),
        "holds no DreamSim LoRA adapter folder",
    ),
    "unknown-model": (
        _folder(lambda f: (f / CLIP_LORA).rename(f / "dinov2_vitb14_single_lora")),
        "it has dinov2_vitb14_single_lora: models this converter does not know",
    ),
    "two-models": (
        _folder(lambda f: shutil.copytree(f / CLIP_LORA, f / "dino_vitb16_single_lora")),
        r"several DreamSim models \(clip_vitb32, dino_vitb16\): choose one with --model-type",
    ),
    "model-type-absent": (
        lambda r, f: variant(r, f),
        r"has no ensemble_lora/adapter_config\.json \(the ensemble model\); it has clip_vitb32",
        {"model_type": "ensemble"},
    ),
    "dino-backbone-missing": (
        lambda r, f: variant(r, f),
        "--dino-backbone .*nowhere.pth: no such file",
        {"dino_backbone": "nowhere.pth"},
    ),
    "dino-backbone-without-dino": (
        lambda r, f: variant(r, f),
        "--dino-backbone: the clip_vitb32 model has no DINO branch",
        {"dino_backbone": __file__},
    ),
    "not-json": (_folder(lambda f: (f / CLIP_LORA / "adapter_config.json").write_text("{r: 16")), "is not JSON"),
    "not-lora": (_ia3_adapter, "peft_type is 'IA3'; only LoRA adapters"),
    "dora": (_config(use_dora=True), "use_dora is True"),
    "fan-in-fan-out": (_config(fan_in_fan_out=True), "fan_in_fan_out is True"),
    "bias": (_config(bias="lora_only"), "bias is 'lora_only'"),
    "modules-to-save": (_config(modules_to_save=["mlp"]), r"modules_to_save is \['mlp'\]"),
    "lora-bias": (_config(lora_bias=True), "lora_bias is True"),
    "layers-to-transform": (_config(layers_to_transform=[0, 1]), r"layers_to_transform is \[0, 1\] \(not understood"),
    "pissa": (_config(init_lora_weights="pissa"), "init_lora_weights is 'pissa', which changes the base weights"),
    "all-linear": (_config(target_modules="all-linear"), "target_modules is 'all-linear'"),
    "rank-zero": (_config(r=0), "r is 0; expected a positive integer"),
    "bad-expression": (_config(target_modules=r".*(qkv"), "is not a regular expression"),
    "target-unmatched": (_config(target_modules=["qkv", "to_q"]), r"target_modules \['to_q'\] matched no layer"),
    "not-a-linear": (
        _tensors(_add("base_model.model.extractor_list.0.model.patch_embed.proj")),
        r"no Linear layer of a DreamSim branch: base_model\.model\.extractor_list\.0\.model\.patch_embed\.proj",
    ),
    "no-such-branch": (
        _tensors(_add("base_model.model.extractor_list.1.model.blocks.0.attn.qkv")),
        r"no Linear layer of a DreamSim branch: base_model\.model\.extractor_list\.1\.",
    ),
    "untargeted-layer": (
        _tensors(_add("base_model.model.extractor_list.0.model.blocks.0.attn.proj")),
        r"weights for extractor_list\.0\.model\.blocks\.0\.attn\.proj, which target_modules does not name",
    ),
    "missing-layer": (
        _tensors(lambda t: [t.pop(QKV.format(5, ab)) for ab in "AB"]),
        r"no weights for extractor_list\.0\.model\.blocks\.5\.attn\.qkv, which target_modules names",
    ),
    "wrong-shape": (
        _tensors(lambda t: t.update({QKV.format(3, "A"): torch.zeros(8, 768)})),
        r"blocks\.3\.attn\.qkv: lora_A is \(8, 768\) and lora_B \(2304, 16\)",
    ),
    "backbone-tensor-missing": (_missing_backbone_tensor, "missing blocks.11.mlp.fc2.bias"),
    "namespace-outside-dino": (
        _folder(lambda f: _small_clip_file(f, args=argparse.Namespace(lr=1.0))),
        "clip_vitb32_pretrain.pth.tar holds objects other than tensors",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refusals_name_what_is_wrong(case, clip_release, tmp_path, capsys):
    make, message, *rest = CASES[case]
    checkpoint = make(clip_release, tmp_path / "release")
    options = rest[0] if rest else {}
    with pytest.raises(ConversionError, match=message):
        convert_dreamsim(checkpoint, tmp_path / "out", **options)
    argv = ["convert-dreamsim", str(checkpoint), "--out", str(tmp_path / "cli")]
    for name, value in options.items():
        argv += ["--" + name.replace("_", "-"), str(value)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("semantic-iqa: error: ")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cli").exists()


def test_a_pickle_with_code_is_refused_unrun(clip_release, tmp_path):
    marker = tmp_path / "code-ran"
    folder = _small_clip_file(variant(clip_release, tmp_path / "release"), extra=CreatesAFile(marker))
    with pytest.raises(ConversionError, match="holds objects other than tensors"):
        convert_dreamsim(folder, tmp_path / "out")
    assert not marker.exists(), "the pickle's code ran"


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
