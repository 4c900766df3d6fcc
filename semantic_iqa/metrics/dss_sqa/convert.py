"""Convert the DSS-SQA authors' fold checkpoints into a weights folder.

The authors' train script saves one `torch.save` dict per fold
(`fold_<k>/checkpoints/best.pth`, and `last.pth`) with the keys `epoch`, `model`,
`optimizer`, `scheduler`, `metrics` and `config`. `model` is the whole state_dict, both
frozen backbones included:

    structure_backbone.*   the timm DINOv3 model's state_dict
    clip_backbone.*        the transformers CLIPVisionModel's state_dict (`vision_model.*`, as
                           transformers 4 names it; transformers 5 names are accepted too)
    bottleneck.0 / .1      Linear(5377 -> 256) / BatchNorm1d(256)
    head.0 / head.3        Linear(256 -> 128) / Linear(128 -> 6)
    score_weights          [0, 1, 2, 3, 4, 5]

Loading. Such a file holds only tensors, dicts, lists, strings and numbers, so it is read
with `torch.load(..., weights_only=True)`, which cannot run code. A file that needs the
full unpickler (a numpy scalar in `metrics`, a custom class, or a pickle that would run
code) is refused, unless the caller opts in with `trust_pickle=True` (`--trust-pickle` on
the command line): that unpickles it in full and runs any code stored in it.

The settings are checked by `checkpoint_config` (the reference run's key table).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..._version import __version__
from ...backbones import SemanticEncoder, StructureEncoder, clip_keys_for_installed
from ...checkpoints import load_checkpoint
from ...errors import ConversionError
from ...outputs import check_output_folder
from ...weights import read_folder, sha256_file
from .checkpoint_config import MODEL_KEYS, check_model_keys, default_gate_mode, gate_mode, model_section
from .config import (
    REFERENCE_CONFIG,
    REFERENCE_SEMANTIC_CONFIG,
    REFERENCE_STRUCTURE_ARGS,
    BackboneSpec,
    DSSSQAConfig,
)
from .heads import FoldHeads
from .model import DSSSQA

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
    trust_pickle: bool = False,
    overwrite: bool = False,
) -> Path:
    """Convert the authors' fold checkpoints (in fold order) into a weights folder at `out`.

    Args:
        checkpoints: one authors' checkpoint per fold, fold 0 first (`best.pth` or `last.pth`).
        out: folder to write.
        hub_backbones: reference the Hub backbones instead of storing the checkpoint's
            (smaller folder; the backbones download on first use).
        architecture_from: a weights folder whose locally stored backbones give the backbone
            architectures (for checkpoints of non-reference sizes, e.g. tiny test models);
            default: the reference DINOv3 ViT-B/16 and CLIP ViT-L/14-336.
        trust_pickle: read files that the safe loader (`torch.load(weights_only=True)`)
            refuses with the full unpickler, which runs any code stored in them. Only for
            files you trust; checkpoints written by the authors' train script do not need it.
        overwrite: write into a non-empty `out` that is not a DSS-SQA weights folder (never
            over a checkpoint or into the `architecture_from` folder).

    Returns:
        The written weights folder. Its default gate is the checkpoints' (`off` when their
        `semantic_gate_enabled` is false).

    Raises:
        ConversionError: unreadable file, a file the safe loader refuses (without
            `trust_pickle`), unexpected layout, a `config["model"]` key that differs from the
            reference or is unknown (see the module docstring), folds that disagree on the
            gate, or backbones that differ between folds.
    """
    if not checkpoints:
        raise ConversionError("give at least one checkpoint (one per fold, fold 0 first)")
    inputs = [*checkpoints, architecture_from]
    check_output_folder(out, metric=DSSSQA.name, overwrite=overwrite, inputs=inputs)  # before reading gigabytes
    folds = [_read_checkpoint(Path(path), trust_pickle) for path in checkpoints]
    default_gate = default_gate_mode(folds)
    backbones = _shared_backbones(folds)
    structure, semantic = _build_encoders(architecture_from)
    backbones["semantic"] = clip_keys_for_installed(semantic.model, backbones["semantic"])
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
        provenance=_provenance(folds, hub_backbones, trust_pickle),
    )
    config = config.with_gate(mode=default_gate)
    heads = FoldHeads(config.num_folds, config.fusion_dim, config.head)
    for index, fold in enumerate(folds):
        try:
            heads.load_fold_state_dict(index, fold["heads"])
        except (KeyError, ValueError) as exc:
            raise ConversionError(f"{fold['path']}: head tensors do not fit: {exc}") from None
    return DSSSQA(config, structure, semantic, heads).save_pretrained(out, overwrite=overwrite)


def _read_checkpoint(path: Path, trust_pickle: bool) -> dict[str, Any]:
    """Load one fold file, check its layout and its `config["model"]`, keep what conversion needs."""
    raw = load_checkpoint(path, trust_pickle=trust_pickle, trust_option="--trust-pickle (trust_pickle=True)")
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
        raise ConversionError(f"{path} is not an authors' DSS-SQA checkpoint (no 'model' state_dict)")
    state = raw["model"]
    score_weights = state.get("score_weights")
    if not isinstance(score_weights, torch.Tensor) or not torch.equal(score_weights.float().cpu(), torch.arange(6.0)):
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
    settings = model_section(path, raw.get("config"))
    check_model_keys(path, settings)
    return {
        "path": path,
        "sha256": sha256_file(path),
        "gate_mode": gate_mode(path, settings),
        "assumed_keys": sorted(key for key, row in MODEL_KEYS.items() if row.shapes_the_model and key not in settings),
        "epoch": raw.get("epoch"),
        "metrics": raw.get("metrics"),
        "backbones": backbones,
        "heads": heads,
    }


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
    config = DSSSQAConfig.from_dict(read_folder(folder).settings)
    if config.structure.path is None or config.semantic.path is None:
        raise ConversionError(f"--architecture-from {folder}: both backbones must be stored in that folder")
    return (
        StructureEncoder.from_folder(folder / config.structure.path),
        SemanticEncoder.from_folder(folder / config.semantic.path),
    )


def _provenance(folds: list[dict[str, Any]], hub_backbones: bool, trust_pickle: bool) -> dict[str, Any]:
    sources = []
    for fold in folds:
        source = {
            "file": fold["path"].name,
            "sha256": fold["sha256"],
            "epoch": _plain(fold["epoch"]),
            "metrics": _plain(fold["metrics"]),
        }
        if fold["assumed_keys"]:  # absent from its config["model"]: the reference values were assumed
            source["assumed_reference_values"] = fold["assumed_keys"]
        sources.append(source)
    provenance: dict[str, Any] = {
        "converted_by": f"semantic-iqa {__version__} convert-siqav3",
        "training_data": "LoViF 2026 SeIQA train split (510 pairs), 5-fold cross-validation (authors' run)",
        "source_checkpoints": sources,
    }
    if trust_pickle:
        provenance["source_loading"] = "full unpickling (--trust-pickle)"
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
