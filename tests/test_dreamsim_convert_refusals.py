"""convert-dreamsim's refusals: every malformed release is one typed error naming what is wrong (issue 22).

Each case edits a copy of the clip_vitb32 release (tests/dreamsim_convert_cases.py) and is
refused by `convert_dreamsim` (`ConversionError`, message checked) and by the command line
(one line, exit code 2), with nothing written.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import torch
from dreamsim_convert_cases import (
    ADAPTER,
    CLIP_LORA,
    authors_perceptual_model,
    edit_config,
    edit_tensors,
    variant,
)
from dreamsim_release import zip_release
from peft import IA3Config, get_peft_model
from pickle_payload import CreatesAFile

from semantic_iqa.cli import main
from semantic_iqa.errors import ConversionError
from semantic_iqa.metrics.dreamsim.convert import convert_dreamsim

pytest_plugins = ["dreamsim_convert_cases"]  # fixtures: clip_release, free_disk
pytestmark = pytest.mark.usefixtures("free_disk")


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
