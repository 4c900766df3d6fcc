"""Convert the DSS-SQA authors' fold checkpoints into a weights folder.

The authors saved one `torch.save` pickle per fold (`fold_<k>/checkpoints/best.pth`) with
the whole model: both frozen backbones and the head. The model keys are

    structure_backbone.*   the timm DINOv3 model's state_dict
    clip_backbone.*        the transformers CLIPVisionModel's state_dict
    bottleneck.0 / .1      Linear(5377 -> 256) / BatchNorm1d(256)
    head.0 / head.3        Linear(256 -> 128) / Linear(128 -> 6)
    score_weights          [0, 1, 2, 3, 4, 5]

Reading them needs `torch.load(..., weights_only=False)`, which can run code stored in the
file: it is done only here, only for files the user names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .backbones import SemanticEncoder, StructureEncoder
from .config import GATE_MODES, REFERENCE_CONFIG, REFERENCE_SEMANTIC_CONFIG, REFERENCE_STRUCTURE_ARGS, BackboneSpec
from .errors import ConversionError
from .heads import FoldHeads
from .model import DSSSQA
from .weights import read_config, sha256_file

# config["model"] switches and the values the reference (and this package) implements.
REFERENCE_SWITCHES: dict[str, Any] = {
    "clip_name": "clip_vit_l14_336",
    "structure_backbone": "vit_base_patch16_dinov3",
    "num_classes": 6,
    "clip_mult_enabled": True,
    "clip_mult_replace_raw": True,
    "clip_mult_l2_norm": True,
    "bottleneck_dim": 256,
}
# Gate switches: the reference does not fix their spelling, so they are recognised by the
# words in their names and compared with the reference numbers.
GATE_NUMBERS = (("low", 0.4), ("high", 0.5), ("hard", 12.0), ("soft", 6.0), ("strength", 6.0))

# Authors' head tensor names -> this package's fold tensor names.
HEAD_KEYS = {
    "bottleneck.0.weight": "linear1.weight",
    "bottleneck.0.bias": "linear1.bias",
    "bottleneck.1.weight": "norm.weight",
    "bottleneck.1.bias": "norm.bias",
    "bottleneck.1.running_mean": "norm.running_mean",
    "bottleneck.1.running_var": "norm.running_var",
    "bottleneck.1.num_batches_tracked": "norm.num_batches_tracked",
    "head.0.weight": "linear2.weight",
    "head.0.bias": "linear2.bias",
    "head.3.weight": "linear3.weight",
    "head.3.bias": "linear3.bias",
}
BACKBONE_PREFIXES = {"structure": "structure_backbone.", "semantic": "clip_backbone."}


def convert_siqav3(
    checkpoints: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    hub_backbones: bool = False,
    architecture_from: str | os.PathLike | None = None,
) -> Path:
    """Convert the authors' fold checkpoints (in fold order) into a weights folder at `out`.

    Args:
        checkpoints: one authors' checkpoint per fold, fold 0 first. Each is unpickled with
            `torch.load(weights_only=False)`: pass only files you trust.
        out: folder to write.
        hub_backbones: reference the Hub backbones instead of storing the checkpoint's
            (smaller folder; the backbones download on first use).
        architecture_from: a weights folder whose locally stored backbones give the backbone
            architectures (for checkpoints of non-reference sizes, e.g. tiny test models);
            default: the reference DINOv3 ViT-B/16 and CLIP ViT-L/14-336.

    Raises:
        ConversionError: unreadable file, unexpected layout, a switch that differs from the
            reference, or backbones that differ between folds.
    """
    if not checkpoints:
        raise ConversionError("give at least one checkpoint (one per fold, fold 0 first)")
    folds = [_read_checkpoint(Path(path)) for path in checkpoints]
    gate_mode = _check_switches(folds)
    backbones = _shared_backbones(folds)
    structure, semantic = _build_encoders(architecture_from)
    for role, encoder in (("structure", structure), ("semantic", semantic)):
        try:
            encoder.model.load_state_dict(backbones[role], strict=True)
        except RuntimeError as exc:
            raise ConversionError(
                f"the checkpoints' {role} backbone does not fit the expected architecture "
                f"({'--architecture-from ' + str(architecture_from) if architecture_from else 'the reference'}): "
                + str(exc).splitlines()[0]
            ) from None

    config = replace(
        REFERENCE_CONFIG,
        structure=REFERENCE_CONFIG.structure
        if hub_backbones
        else BackboneSpec("timm", REFERENCE_CONFIG.structure.name, path="structure"),
        semantic=REFERENCE_CONFIG.semantic
        if hub_backbones
        else BackboneSpec("transformers", REFERENCE_CONFIG.semantic.name, path="semantic"),
        structure_dim=structure.feature_dim,
        semantic_dim=semantic.feature_dim,
        num_folds=len(folds),
        provenance=_provenance(folds, hub_backbones),
    )
    config = config.with_gate(mode=gate_mode)
    heads = FoldHeads(config.num_folds, config.fusion_dim, config.head)
    for index, fold in enumerate(folds):
        try:
            heads.load_fold_state_dict(index, fold["heads"])
        except (KeyError, ValueError) as exc:
            raise ConversionError(f"{fold['path']}: head tensors do not fit: {exc}") from None
    return DSSSQA(config, structure, semantic, heads).save_pretrained(out)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConversionError(f"checkpoint not found: {path}")
    try:
        # The user named this file; the authors' format needs the full unpickler.
        raw = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any unpickling failure means "not a readable checkpoint"
        raise ConversionError(f"cannot read {path} as a torch checkpoint: {exc}".splitlines()[0]) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
        raise ConversionError(f"{path} is not an authors' DSS-SQA checkpoint (no 'model' state_dict)")
    state = raw["model"]
    score_weights = state.get("score_weights")
    if score_weights is None or not torch.equal(score_weights.float().cpu(), torch.arange(6.0)):
        raise ConversionError(f"{path}: 'score_weights' must be [0, 1, 2, 3, 4, 5], got {score_weights}")
    backbones = {
        role: {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        for role, prefix in BACKBONE_PREFIXES.items()
    }
    heads = {ours: state[theirs] for theirs, ours in HEAD_KEYS.items() if theirs in state}
    known = set(HEAD_KEYS) | {"score_weights"}
    unexpected = sorted(k for k in state if k not in known and not k.startswith(tuple(BACKBONE_PREFIXES.values())))
    missing = sorted(set(HEAD_KEYS) - set(state))
    if unexpected or missing or not all(backbones.values()):
        raise ConversionError(
            f"{path}: unexpected layout (missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"backbone tensors: {', '.join(f'{r}={len(b)}' for r, b in backbones.items())})"
        )
    config = raw.get("config") or {}
    return {
        "path": path,
        "sha256": sha256_file(path),
        "switches": dict(config.get("model") or {}) if isinstance(config, dict) else {},
        "epoch": raw.get("epoch"),
        "metrics": raw.get("metrics"),
        "backbones": backbones,
        "heads": heads,
    }


def _check_switches(folds: list[dict[str, Any]]) -> str:
    """Refuse any switch that differs from the reference; return the gate mode."""
    modes = set()
    for fold in folds:
        for key, value in fold["switches"].items():
            expected = REFERENCE_SWITCHES.get(key, _gate_number(key))
            if key == "semantic_gate_mode":
                if value not in GATE_MODES:
                    raise ConversionError(f"{fold['path']}: semantic_gate_mode {value!r} is not one of {GATE_MODES}")
                modes.add(value)
            elif expected is not None and value != expected:
                raise ConversionError(
                    f"{fold['path']}: config['model'][{key!r}] is {value!r} but this package implements the "
                    f"reference value {expected!r}; such a checkpoint cannot be converted"
                )
            elif expected is None and "gate" in key:
                raise ConversionError(
                    f"{fold['path']}: unrecognised gate switch config['model'][{key!r}] = {value!r}; "
                    "please report it with the checkpoint's config"
                )
    if len(modes) > 1:
        raise ConversionError(f"the checkpoints disagree on semantic_gate_mode: {sorted(modes)}")
    return modes.pop() if modes else REFERENCE_CONFIG.gate.mode


def _gate_number(key: str) -> float | None:
    if "gate" not in key or key == "semantic_gate_mode":
        return None
    return next((value for word, value in GATE_NUMBERS if word in key), None)


def _shared_backbones(folds: list[dict[str, Any]]) -> dict[str, dict[str, torch.Tensor]]:
    """The backbones were frozen, so every fold must hold the same tensors: check, keep one copy."""
    first = folds[0]
    for fold in folds[1:]:
        for role, tensors in first["backbones"].items():
            other = fold["backbones"][role]
            if other.keys() != tensors.keys():
                raise ConversionError(f"{fold['path']}: its {role} backbone has other tensors than {first['path']}'s")
            for key, value in tensors.items():
                if not torch.equal(value, other[key]):
                    raise ConversionError(
                        f"the {role} backbones of {first['path']} and {fold['path']} differ (first at {key}); "
                        "they were frozen in training, so these are not folds of one model"
                    )
    return first["backbones"]


def _build_encoders(architecture_from: str | os.PathLike | None) -> tuple[StructureEncoder, SemanticEncoder]:
    if architecture_from is None:
        return (
            StructureEncoder.build(REFERENCE_CONFIG.structure.name, **REFERENCE_STRUCTURE_ARGS),
            SemanticEncoder.build(**REFERENCE_SEMANTIC_CONFIG),
        )
    folder = Path(architecture_from)
    config = read_config(folder).config
    if config.structure.path is None or config.semantic.path is None:
        raise ConversionError(f"--architecture-from {folder}: both backbones must be stored in that folder")
    return (
        StructureEncoder.from_folder(folder / config.structure.path),
        SemanticEncoder.from_folder(folder / config.semantic.path),
    )


def _provenance(folds: list[dict[str, Any]], hub_backbones: bool) -> dict[str, Any]:
    provenance: dict[str, Any] = {
        "converted_by": f"semantic-iqa {__version__} convert-siqav3",
        "training_data": "LoViF 2026 SeIQA train split (510 pairs), 5-fold cross-validation (authors' run)",
        "source_checkpoints": [
            {
                "file": fold["path"].name,
                "sha256": fold["sha256"],
                "epoch": _plain(fold["epoch"]),
                "metrics": _plain(fold["metrics"]),
            }
            for fold in folds
        ],
    }
    if hub_backbones:
        provenance["backbones_note"] = (
            "backbones referenced from the Hub; the heads were trained on the checkpoints' own backbone weights"
        )
    return provenance


def _plain(value: Any) -> Any:
    """JSON-safe copy of checkpoint metadata (tensors and numpy scalars become numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
