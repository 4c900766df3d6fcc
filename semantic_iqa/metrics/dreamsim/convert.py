"""Convert the DreamSim authors' release (backbones + peft LoRA adapter) into a weights folder.

`convert_dreamsim(checkpoint, out)`: `checkpoint` is the release zip as downloaded
(`dreamsim_ensemble_checkpoint.zip`, ...) or the folder it was unpacked into (the authors'
`cache_dir`); `release.py` reads it, `lora.py` checks and merges the adapter.

The backbone files hold ViTs in DINO's layout, which is timm's, so each maps onto the branch's
timm ViT (`branches.BRANCHES`) by name, loaded strictly (every tensor accounted for):

- CLIP and OpenCLIP (`<name>_pretrain.pth.tar`, `{"state_dict": ...}`): `pos_drop.*` is CLIP's
  `ln_pre`, timm's `norm_pre.*`; `proj` [768, 512] becomes `head.weight = proj^T` (bias 0).
  timm's CLIP ViTs have no patch-embedding bias (CLIP has none); the authors' layout has one,
  added to every patch token: it is folded into the patch positions' `pos_embed`, exactly.
- DINO: the backbone the authors' code uses is `torch.hub.load("facebookresearch/dino:main",
  "dino_vitb16")`, DINO's published teacher backbone, not the release's
  `dino_vitb16_pretrain.pth` (DINO's full training checkpoint, of which the authors' code
  reads only the student's projection head, unused by DreamSim's CLS feature). In order of
  preference: `dino_backbone` (a file given), the hub's download `checkpoints/
  dino_vitbase16_pretrain.pth` in the release folder, else the `teacher` entry's `backbone.*`
  of the training checkpoint (DINO publishes its teacher's backbone as the hub weights; not
  compared with the real files here, offline). Its final `norm.*` is dropped: DreamSim takes
  block 11's CLS token before it. The provenance says which one was used.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import timm
import torch

from ..._version import __version__
from ...backbones import TimmOutputEncoder
from ...config import BackboneSpec
from ...errors import ConversionError
from ...outputs import check_output_folder
from ...weights import sha256_file
from .branches import MODEL_TYPES, Branch, model_type_branches
from .config import DreamSimConfig
from .lora import merge_lora, read_settings, read_weights
from .model import DreamSim
from .release import DINO_HUB_FILE, Release, backbone_file, load_tensors, open_release, sha256_bytes

DINO_CHECKPOINT = "dino_vitb16_pretrain.pth"


def convert_dreamsim(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model_type: str | None = None,
    dino_backbone: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert the authors' release at `checkpoint` (zip or folder) into a weights folder at `out`.

    Args:
        checkpoint: `dreamsim_<type>_checkpoint.zip` as downloaded, or the folder it was unpacked into.
        out: the weights folder to write.
        model_type: "ensemble", "dino_vitb16", "clip_vitb32" or "open_clip_vitb32"; default:
            the one whose LoRA folder the release holds.
        dino_backbone: DINO's ViT-B/16 backbone file (`dino_vitbase16_pretrain.pth`, what the
            authors' code loads through torch.hub); default: see the module docstring.
        overwrite: write into a non-empty `out` that is not a DreamSim weights folder.

    Raises:
        ConversionError: a missing or unreadable file (named), an adapter that is not LoRA
            or has settings this converter does not merge exactly, LoRA or backbone tensors
            that do not fit the branches (named).
        WeightsOutputError: `out` may not be written (see `semantic_iqa.outputs`).
    """
    check_output_folder(out, metric=DreamSim.name, overwrite=overwrite, inputs=[checkpoint, dino_backbone])
    with open_release(checkpoint) as release:
        model_type = release.choose_model(model_type)
        branches = model_type_branches(model_type)
        lora_folder = MODEL_TYPES[model_type][1]
        if dino_backbone is not None and not Path(dino_backbone).is_file():
            raise ConversionError(f"--dino-backbone {dino_backbone}: no such file")
        if dino_backbone is not None and all(item.role != "dino" for item in branches):
            raise ConversionError(f"--dino-backbone: the {model_type} model has no DINO branch")
        settings = read_settings(release, lora_folder)
        tensors, lora_file, lora_sha = read_weights(release, lora_folder)
        lora_label = release.label(lora_file)
        for item in branches:  # every member is there before anything long is read
            if item.role != "dino":
                release.require(backbone_file(item), f"the {item.name} backbone")
            elif dino_backbone is None and _dino_hub_member(release) is None:
                release.require(DINO_CHECKPOINT, "DINO's training checkpoint, whose teacher is the DINO backbone")
        encoders = {item.role: _empty_encoder(item) for item in branches}
        models = [encoders[item.role].model for item in branches]
        merged = merge_lora(models, settings, tensors, lora_label, check_only=True)  # before the long reads
        config_file = f"{lora_folder}/adapter_config.json"
        files = {config_file: sha256_bytes(release.read(config_file)), lora_file: lora_sha}
        notes: dict[str, Any] = {}
        for item in branches:
            state, source = _backbone_state(release, item, dino_backbone, files)
            notes[item.role] = source | _load_branch(encoders[item.role].model, item, state, source["file"])
        merge_lora(models, settings, tensors, lora_label)
        provenance = {
            "converted_from": Path(checkpoint).name,
            "model_type": model_type,
            "source_sha256": sha256_file(release.path) if release.is_zip else None,
            "files_sha256": files,
            "backbones": notes,
            "lora": settings.provenance() | {"merged_layers": merged, "adapter": lora_folder},
            "converter": f"semantic-iqa {__version__} convert-dreamsim",
        }
    specs = {item.role: BackboneSpec("timm", item.architecture, path=item.role) for item in branches}
    config = replace(DreamSimConfig.for_branches(model_type, branches, **specs), provenance=provenance)
    return DreamSim(config, encoders).eval().save_pretrained(out, overwrite=overwrite)


def _empty_encoder(item: Branch) -> TimmOutputEncoder:
    """The branch's timm ViT without storage (meta device): its tensors are all loaded from the release."""
    with torch.device("meta"):
        model = timm.create_model(item.architecture, pretrained=False, **item.model_args)
    return TimmOutputEncoder(model, item.model_args)


def _dino_hub_member(release: Release) -> str | None:
    """torch.hub's download of DINO's backbone in the release folder (it lands in `checkpoints/`), if any."""
    return next((name for name in (f"checkpoints/{DINO_HUB_FILE}", DINO_HUB_FILE) if release.has(name)), None)


def _backbone_state(
    release: Release, item: Branch, dino_backbone: str | os.PathLike | None, files: dict[str, str]
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A branch's tensors in the authors' (DINO) layout, and where they came from; records the file's sha256."""
    if item.role == "dino" and dino_backbone is not None:
        path = Path(dino_backbone)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConversionError(f"--dino-backbone {path}: cannot read it: {exc}") from None
        label, name, source = str(path), path.name, "the file given (--dino-backbone)"
    else:
        name = _dino_hub_member(release) if item.role == "dino" else backbone_file(item)
        name = name or DINO_CHECKPOINT
        data, label = release.read(name), release.label(name)
        source = {
            DINO_CHECKPOINT: "the teacher backbone of DINO's training checkpoint",
            f"checkpoints/{DINO_HUB_FILE}": "torch.hub's DINO ViT-B/16 download, which the authors' code loads",
            DINO_HUB_FILE: "torch.hub's DINO ViT-B/16 download, which the authors' code loads",
        }.get(name, "the authors' CLIP-as-DINO conversion")
    files[name] = sha256_bytes(data)
    raw = load_tensors(data, label, dino_args=item.role == "dino")
    state = _dino_tensors(raw, label) if item.role == "dino" else _clip_tensors(raw, label)
    return state, {"file": name, "source": source}


def _dino_tensors(raw: Any, label: str) -> dict[str, torch.Tensor]:
    """DINO's backbone: a bare state_dict (torch.hub's file), or `teacher`'s `backbone.*` of a training checkpoint."""
    if isinstance(raw, dict) and isinstance(raw.get("teacher"), dict):
        state = {k[len("backbone.") :]: v for k, v in raw["teacher"].items() if k.startswith("backbone.")}
    else:
        state = raw
    return _tensor_dict(state, label, "a DINO ViT state_dict, or a DINO training checkpoint with a 'teacher'")


def _clip_tensors(raw: Any, label: str) -> dict[str, torch.Tensor]:
    state = raw.get("state_dict") if isinstance(raw, dict) else None
    state = _tensor_dict(state, label, "{'state_dict': ...} with the ViT's tensors and 'proj'")
    if "proj" not in state or state["proj"].dim() != 2:
        raise ConversionError(f"{label}: its state_dict has no 'proj' matrix (CLIP's projection)")
    return state


def _tensor_dict(state: Any, label: str, expected: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{label} is not what the DreamSim release holds there: expected {expected}")
    return dict(state)


def _load_branch(model: torch.nn.Module, item: Branch, state: dict[str, torch.Tensor], name: str) -> dict[str, str]:
    """Map the authors' tensors onto the branch's timm ViT and load them strictly; returns what was adapted."""
    mapped, notes, expected = {}, {}, model.state_dict()
    for key, value in state.items():
        if item.role == "dino" and key.split(".")[0] in ("norm", "head") and key not in expected:
            # the branch is built without a final norm (`final_norm=False`): its feature is block 11's CLS token
            notes["final_norm"] = "dropped: DreamSim's DINO feature is block 11's CLS token before it"
        elif key.startswith("pos_drop."):
            mapped["norm_pre." + key[len("pos_drop.") :]] = value
        elif key == "proj":
            mapped["head.weight"] = value.t().contiguous()
            mapped["head.bias"] = torch.zeros(value.shape[1], dtype=value.dtype)
        else:
            mapped[key] = value
    bias, positions = mapped.get("patch_embed.proj.bias"), mapped.get("pos_embed")
    if bias is not None and positions is not None and model.patch_embed.proj.bias is None:
        # The bias is added to every patch token and to no class token: the same as adding it to
        # the patch positions' embeddings, which timm's CLIP ViT (no patch bias) can hold.
        if positions.dim() == 3 and positions.shape[-1] == bias.numel():
            folded = positions.double()
            folded[:, 1:] += bias.double()
            mapped["pos_embed"] = folded.to(positions.dtype)
            del mapped["patch_embed.proj.bias"]
            notes["patch_embed_bias"] = f"folded into pos_embed (max |bias| {float(bias.abs().max()):.3g})"
    problems = [f"missing {k}" for k in expected if k not in mapped]
    problems += [f"unexpected {k}" for k in mapped if k not in expected]
    problems += [
        f"{k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
        for k, v in mapped.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if problems:
        raise ConversionError(
            f"{name} does not hold the {item.name} ViT ({item.architecture} in timm's names): "
            f"{len(problems)} problem(s): " + "; ".join(problems[:8]) + (" ..." if len(problems) > 8 else "")
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in mapped.items()}, strict=True, assign=True)
    left = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if left:  # a buffer of the installed timm that no state_dict holds
        raise ConversionError(f"{item.architecture} in this timm has tensors no checkpoint holds: {', '.join(left)}")
    return notes
