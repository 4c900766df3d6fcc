"""The DreamSim authors' release layout, written with random full-size weights, and their own model on it.

`write_release(folder, model_type)` writes what `dreamsim.download_weights` unpacks into its
`cache_dir`, built with the `dreamsim` package's own code:

- `clip_vitb{16,32}_pretrain.pth.tar`, `open_clip_vitb{16,32}_pretrain.pth.tar`:
  `{"state_dict": ...}` of their `vision_transformer.vit_base` with `pos_drop` replaced by a
  LayerNorm (CLIP's `ln_pre`), plus `proj` [768, 512]: the layout their `load_clip_as_dino` /
  `load_open_clip_as_dino` read (and do read, below). The patch embedding's bias is random,
  not zero: the converter must carry it (timm's CLIP ViTs have none).
- `dino_vitb16_pretrain.pth`: DINO's full training checkpoint: `student` (`module.backbone.*`,
  `module.head.*`), `teacher` (`backbone.*`, `head.*`), `optimizer`, `epoch` and `dino_loss`.
  Student and teacher backbones differ, so using the wrong one shows. DINO's `main_dino.py`
  also saves `args`, an `argparse.Namespace`: the release's file cannot hold one, since the
  authors' code reads it with `torch.load(weights_only=True)`, which refuses it; DINO's own
  file (`write_dino_checkpoint(..., namespace_args=True)`) has it.
- `<type>_lora/` (`ensemble_lora`, `clip_vitb32_single_lora`, ...): a random LoRA on their
  `PerceptualModel`, made by `peft.get_peft_model` with the authors' training settings
  (`training/train.py` and `configs/train_*_lora.yaml` of github.com/ssundaram21/dreamsim:
  r=16, lora_alpha=0.5, lora_dropout=0.3, bias="none", target_modules=["qkv"]) and
  `init_lora_weights=False` (B is not zero), saved by peft's own `save_pretrained`.

The DINO backbone of their code comes from `torch.hub.load("facebookresearch/dino:main",
"dino_vitb16")`, a download: `dino_hub(folder)` stands in for it with what DINO's hub entry
returns, their `vit_base(patch_size=16)` holding the teacher's backbone. Nothing else of their
code is patched. The weights are random (a gain of 2 on the Linear layers so that the
features follow the image content): every distance computed with them is meaningless.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import torch
from dreamsim import dreamsim
from dreamsim.config import dreamsim_args
from dreamsim.feature_extraction.vision_transformer import DINOHead, vit_base
from dreamsim.model import PerceptualModel
from peft import LoraConfig, get_peft_model

AUTHORS_LORA = {"r": 16, "lora_alpha": 0.5, "lora_dropout": 0.3, "bias": "none", "target_modules": ["qkv"]}
LORA_FOLDERS = {
    "ensemble": "ensemble_lora",
    "dino_vitb16": "dino_vitb16_single_lora",
    "clip_vitb32": "clip_vitb32_single_lora",
    "open_clip_vitb32": "open_clip_vitb32_single_lora",
}
HUB_FILE = "checkpoints/dino_vitbase16_pretrain.pth"  # where torch.hub puts DINO's download
GAIN = 2.0


def randomise(model: torch.nn.Module, generator: torch.Generator, gain: float = GAIN) -> torch.nn.Module:
    """Random weights that let the image content through 12 blocks (timm-like scales, Linear gain `gain`).

    Every parameter is written (in place: the models are large).
    """
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in ("cls_token", "pos_embed"):
                param.normal_(0.0, 0.02, generator=generator)
            elif param.dim() >= 2:
                param.normal_(0.0, gain / param[0].numel() ** 0.5, generator=generator)
            elif name.endswith("weight"):  # LayerNorm scales
                param.normal_(1.0, 0.1, generator=generator)
            else:
                param.normal_(0.0, 0.02, generator=generator)
    return model


def authors_vit(patch_size: int, ln_pre: bool = False) -> torch.nn.Module:
    """The authors' `vit_base`; `ln_pre`: in their CLIP layout (`pos_drop` a LayerNorm, CLIP's `ln_pre`)."""
    model = vit_base(patch_size=patch_size)
    if ln_pre:
        model.pos_drop = torch.nn.LayerNorm(model.embed_dim)
    return model


def _dino_head(generator: torch.Generator) -> dict[str, torch.Tensor]:
    # The authors' code reads `last_layer.weight` of the student's head; weight_norm stores g and v too.
    head = DINOHead(768, 2048)
    state = {k: v.clone() for k, v in head.state_dict().items()}
    state["last_layer.weight"] = head.last_layer.weight.detach().clone()
    return state


def write_dino_checkpoint(
    path: Path, generator: torch.Generator, *, namespace_args: bool = False
) -> dict[str, torch.Tensor]:
    """DINO's training checkpoint; returns the teacher's backbone (what DINO publishes and torch.hub loads).

    namespace_args: store DINO's `args` (an `argparse.Namespace`) as `main_dino.py` does.
    """
    teacher = randomise(authors_vit(16), generator).state_dict()
    student = randomise(authors_vit(16), generator).state_dict()
    args = argparse.Namespace(arch="vit_base", patch_size=16, out_dim=65536, norm_last_layer=True, lr=0.00075)
    torch.save(
        {
            "student": {f"module.backbone.{k}": v for k, v in student.items()}
            | {f"module.head.{k}": v for k, v in _dino_head(generator).items()},
            "teacher": {f"backbone.{k}": v for k, v in teacher.items()}
            | {f"head.{k}": v for k, v in _dino_head(generator).items()},
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.0, "weight_decay": 0.4, "params": [0, 1]}]},
            "epoch": 400,
            "dino_loss": {"center": torch.zeros(1, 65536)},
        }
        | ({"args": args} if namespace_args else {}),
        path,
    )
    return teacher


def write_clip_file(path: Path, patch_size: int, generator: torch.Generator) -> None:
    """A CLIP (or OpenCLIP) ViT-B in the authors' DINO layout: `{"state_dict": {..., "proj": [768, 512]}}`."""
    state = dict(randomise(authors_vit(patch_size, ln_pre=True), generator).state_dict())
    state["proj"] = torch.randn(768, 512, generator=generator) / 768**0.5
    torch.save({"state_dict": state}, path)


def hub_stand_in(folder: Path) -> torch.nn.Module:
    """What `torch.hub.load("facebookresearch/dino:main", "dino_vitb16")` returns: their ViT-B/16, teacher backbone."""
    checkpoint = torch.load(Path(folder) / "dino_vitb16_pretrain.pth", map_location="cpu", weights_only=True)
    model = vit_base(patch_size=16, num_classes=0)
    teacher = {k[len("backbone.") :]: v for k, v in checkpoint["teacher"].items() if k.startswith("backbone.")}
    model.load_state_dict(teacher, strict=True)
    return model


@contextlib.contextmanager
def dino_hub(folder: Path) -> Iterator[None]:
    """`torch.hub.load` answers DINO's ViT-B/16 from `folder` (no network); torch.hub's folder is restored after."""
    hub_dir = torch.hub.get_dir()

    def load(repo: str, model: str, *args: object, **kwargs: object) -> torch.nn.Module:
        assert (repo, model) == ("facebookresearch/dino:main", "dino_vitb16"), (repo, model)
        return hub_stand_in(folder)

    try:
        with mock.patch.object(torch.hub, "load", load):
            yield
    finally:
        torch.hub.set_dir(hub_dir)


def write_release(
    folder: Path, model_type: str = "ensemble", seed: int = 0, *, adapter: str = "safetensors", hub_file: bool = False
) -> Path:
    """The unpacked release of `model_type` in `folder`, random full-size weights (see the module docstring).

    adapter: "safetensors" (peft's default) or "bin" (`save_pretrained(safe_serialization=False)`).
    hub_file: also write `checkpoints/dino_vitbase16_pretrain.pth`, as torch.hub leaves it there.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    settings = dreamsim_args["model_config"][model_type]
    for name in settings["model_type"].split(","):
        if name == "dino_vitb16":
            teacher = write_dino_checkpoint(folder / "dino_vitb16_pretrain.pth", generator)
            if hub_file:
                (folder / "checkpoints").mkdir(exist_ok=True)
                torch.save(teacher, folder / HUB_FILE)
        else:
            write_clip_file(folder / f"{name}_pretrain.pth.tar", int(name[-2:]), generator)
    with dino_hub(folder), torch.random.fork_rng():
        torch.manual_seed(seed)  # peft draws the LoRA matrices from the global generator
        model = PerceptualModel(**settings, device="cpu", load_dir=str(folder), normalize_embeds=True)
        peft_model = get_peft_model(model, LoraConfig(**AUTHORS_LORA, init_lora_weights=False))
    peft_model.save_pretrained(str(folder / LORA_FOLDERS[model_type]), safe_serialization=adapter == "safetensors")
    return folder


def zip_release(folder: Path, path: Path, *, top: str | None = None, skip: tuple[str, ...] = ()) -> Path:
    """The release as the downloaded zip (stored, not compressed); `top`: members under that folder."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in sorted(Path(folder).rglob("*")):
            name = file.relative_to(folder).as_posix()
            if file.is_file() and not name.startswith("checkpoints/") and name not in skip:
                archive.write(file, f"{top}/{name}" if top else name)
    return path


def authors_model(folder: Path, model_type: str = "ensemble") -> tuple[torch.nn.Module, object]:
    """The authors' `dreamsim(pretrained=True, device="cpu", cache_dir=folder)`: (model, preprocess)."""
    with dino_hub(folder):
        return dreamsim(pretrained=True, device="cpu", cache_dir=str(folder), dreamsim_type=model_type)


_WRITTEN: dict[tuple[str, int], Path] = {}


def shared_release(request, model_type: str, seed: int = 0) -> Path:
    """`write_release` once per test session and (model_type, seed); removed when the session ends (GBs).

    request: a pytest fixture's `request` (for the session's temporary folder and its clean-up).
    """
    key = (model_type, seed)
    if key not in _WRITTEN:
        root = request.getfixturevalue("tmp_path_factory").getbasetemp() / "dreamsim-releases"
        _WRITTEN[key] = write_release(root / f"{model_type}-{seed}", model_type, seed)
        request.config.add_cleanup(functools.partial(_forget, key))
    return _WRITTEN[key]


def _forget(key: tuple[str, int]) -> None:
    shutil.rmtree(_WRITTEN.pop(key), ignore_errors=True)
