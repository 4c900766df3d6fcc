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

Settings. `config["model"]` (the YAML `model:` section) is checked key by key against
`MODEL_KEYS`, the reference run's table:

- must-match keys (architecture, ablation, gate thresholds and strengths) that differ from
  the reference value are refused, naming the file, the key and both values; numbers are
  compared as numbers (12 == 12.0), booleans only with booleans, strings exactly;
- `semantic_gate_enabled` / `semantic_gate_mode` give the converted model's default gate
  (`off` when the gate is disabled, whatever the mode; a mode of boolean false is `off`,
  as YAML 1.1 reads an unquoted `off`); folds must agree on it;
- `freeze_backbones` is a training setting but must be true: folds with trained backbones
  would each need their own backbones, which a weights folder (one shared pair) cannot hold;
- training-only, loader-only and no-effect keys are accepted with any value.

A key missing from `config["model"]` (or a missing `model` section, or a missing `config`)
takes its reference value: the authors' defaults are the reference values. The keys that
shape the model and were assumed that way are listed in the converted folder's provenance.

An unknown key is refused, because it could change the model, unless its name and value
mark it as a loader option: the name ends in `_path`, `_dir` or `_files_only` (where to
load pretrained weights from, or whether to stay offline) and the value is a string, a
boolean or null. The checkpoint carries every weight, so where they were first loaded from
cannot change the converted model. Anything else, e.g. `drop_path_rate: 0.1` or
`use_local_attention: true`, is refused: report it with the checkpoint's config.
"""

from __future__ import annotations

import math
import numbers
import os
import pickle
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import torch

from ..._version import __version__
from ...backbones import SemanticEncoder, StructureEncoder
from ...errors import ConversionError
from ...weights import read_folder, sha256_file
from .config import (
    GATE_MODES,
    REFERENCE_CONFIG,
    REFERENCE_SEMANTIC_CONFIG,
    REFERENCE_STRUCTURE_ARGS,
    BackboneSpec,
    DSSSQAConfig,
)
from .heads import FoldHeads
from .model import DSSSQA


class Effect(Enum):
    """What a `config["model"]` key does to the model at inference."""

    MUST_MATCH = "must match"  # another value is another model: refused
    GATE_ENABLED = "gate enabled"  # false: the converted default gate is `off`
    GATE_MODE = "gate mode"  # hard / soft / off: the converted default gate
    TRAINING_ONLY = "training only"
    LOADER_ONLY = "loader option"  # where/how pretrained weights were first loaded
    NO_EFFECT = "no effect"


@dataclass(frozen=True)
class ModelKey:
    """One row of the reference table of `config["model"]` keys."""

    reference: Any  # the reference run's value; also what an absent key means
    effect: Effect
    required: bool = False  # a non-must-match key whose reference value is nonetheless required
    note: str = ""  # why another value is refused, shown in the message

    @property
    def refuses_other_values(self) -> bool:
        return self.effect is Effect.MUST_MATCH or self.required

    @property
    def shapes_the_model(self) -> bool:
        """Whether the converted model depends on this key (so an absent key's assumed value matters)."""
        return self.refuses_other_values or self.effect in (Effect.GATE_ENABLED, Effect.GATE_MODE)


_OTHER_MODEL = "this package implements only the reference model"
# The reference run's config["model"], key for key (docs: the reference's checkpoint-format table).
MODEL_KEYS: dict[str, ModelKey] = {
    "structure_backbone": ModelKey("vit_base_patch16_dinov3", Effect.MUST_MATCH, note=_OTHER_MODEL),
    "ablation_mode": ModelKey("full", Effect.MUST_MATCH, note="clip_only / structure_only are other models"),
    "clip_name": ModelKey("clip_vit_l14_336", Effect.MUST_MATCH, note=_OTHER_MODEL),
    "num_classes": ModelKey(6, Effect.MUST_MATCH, note=_OTHER_MODEL),
    "clip_mult_enabled": ModelKey(True, Effect.MUST_MATCH, note="another fusion"),
    "clip_mult_replace_raw": ModelKey(True, Effect.MUST_MATCH, note="another fusion"),
    "clip_mult_l2_norm": ModelKey(True, Effect.MUST_MATCH, note="another fusion"),
    "bottleneck_dim": ModelKey(256, Effect.MUST_MATCH, note=_OTHER_MODEL),
    "semantic_gate_enabled": ModelKey(True, Effect.GATE_ENABLED),
    "semantic_gate_mode": ModelKey("hard", Effect.GATE_MODE),
    "semantic_gate_threshold": ModelKey(0.4, Effect.MUST_MATCH, note="the gate's low threshold"),
    "semantic_gate_high_threshold": ModelKey(0.5, Effect.MUST_MATCH, note="the soft gate's high threshold"),
    "gate_logit_strength": ModelKey(12.0, Effect.MUST_MATCH, note="the hard veto's logit"),
    "soft_gate_logit_strength": ModelKey(6.0, Effect.MUST_MATCH, note="the soft gate's strength"),
    "freeze_backbones": ModelKey(
        True,
        Effect.TRAINING_ONLY,
        required=True,
        note="trained backbones differ per fold, and a weights folder holds one shared pair",
    ),
    "bottleneck_dropout": ModelKey(0.5, Effect.TRAINING_ONLY),
    "clip_interpolate_pos_encoding": ModelKey(True, Effect.NO_EFFECT),  # CLIP input is resized to 336 first
    # Loader options: their reference values are not recorded, and any value is accepted.
    "swin_name": ModelKey(None, Effect.LOADER_ONLY),
    "swin_local_path": ModelKey(None, Effect.LOADER_ONLY),
    "clip_local_dir": ModelKey(None, Effect.LOADER_ONLY),
    "clip_local_files_only": ModelKey(None, Effect.LOADER_ONLY),
}
# Unknown keys accepted as loader options: name suffixes, and the value types such options have.
LOADER_OPTION_SUFFIXES = ("_path", "_dir", "_files_only")
UNKNOWN_KEY_RULE = (
    "an unknown key is accepted only as a loader option: its name ends in "
    + ", ".join(LOADER_OPTION_SUFFIXES)
    + " and its value is a string, a boolean or null"
)
# Relative tolerance of the numeric comparison: 12 == 12.0, and only float round-off is forgiven.
NUMBER_TOLERANCE = 1e-9

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
    folds = [_read_checkpoint(Path(path), trust_pickle) for path in checkpoints]
    gate_mode = _default_gate_mode(folds)
    backbones = _shared_backbones(folds)
    structure, semantic = _build_encoders(architecture_from)
    backbones["semantic"] = _clip_keys_for(semantic.model, backbones["semantic"])
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
    config = config.with_gate(mode=gate_mode)
    heads = FoldHeads(config.num_folds, config.fusion_dim, config.head)
    for index, fold in enumerate(folds):
        try:
            heads.load_fold_state_dict(index, fold["heads"])
        except (KeyError, ValueError) as exc:
            raise ConversionError(f"{fold['path']}: head tensors do not fit: {exc}") from None
    return DSSSQA(config, structure, semantic, heads).save_pretrained(out)


def _clip_keys_for(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's CLIP tensors under the key names of the installed transformers.

    The authors' files hold `CLIPVisionModel` keys as transformers 4 names them
    (`vision_model.embeddings...`); transformers 5 dropped the `vision_model.` level from the
    module (its own loader renames on load). Checkpoints from either era load into either.
    Older transformers also saved the `position_ids` buffer, which newer ones compute.
    """
    wanted = set(model.state_dict())
    renamed = {}
    for key, value in tensors.items():
        if key not in wanted:
            if key.startswith("vision_model.") and key[len("vision_model.") :] in wanted:
                key = key[len("vision_model.") :]
            elif "vision_model." + key in wanted:
                key = "vision_model." + key
            elif key.endswith("embeddings.position_ids"):
                continue  # a buffer recomputed by the model, not a weight
        renamed[key] = value
    return renamed


def _read_checkpoint(path: Path, trust_pickle: bool) -> dict[str, Any]:
    """Load one fold file, check its layout and its `config["model"]`, keep what conversion needs."""
    raw = _load(path, trust_pickle)
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
    settings = _model_section(path, raw.get("config"))
    _check_model_keys(path, settings)
    return {
        "path": path,
        "sha256": sha256_file(path),
        "gate_mode": _gate_mode(path, settings),
        "assumed_keys": sorted(key for key, row in MODEL_KEYS.items() if row.shapes_the_model and key not in settings),
        "epoch": raw.get("epoch"),
        "metrics": raw.get("metrics"),
        "backbones": backbones,
        "heads": heads,
    }


def _load(path: Path, trust_pickle: bool) -> Any:
    """`torch.load` on CPU: safely (tensors and plain data only) unless the caller trusts the file."""
    if not path.is_file():
        raise ConversionError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        reason = _unpickling_reason(exc)
        if trust_pickle or not _looks_like_torch_save(path):
            raise ConversionError(f"cannot read {path} as a torch checkpoint: {reason}") from None
        # A real torch file whose pickle names other Python objects: numpy scalars, custom
        # classes, or code. The authors' script writes none of these.
        raise ConversionError(
            f"{path} does not load with the safe loader (torch.load weights_only=True): {reason}. "
            "Checkpoints written by the authors' train script load safely. Only if you trust this file, "
            "convert it with --trust-pickle (trust_pickle=True), which unpickles it in full and runs any code "
            "stored in it"
        ) from None
    except Exception as exc:  # zip or storage errors: not a readable checkpoint
        raise ConversionError(f"cannot read {path} as a torch checkpoint: {_first_line(str(exc))}") from None


def _looks_like_torch_save(path: Path) -> bool:
    """A `torch.save` file is a zip archive (or, in the legacy format, starts with a pickle protocol opcode)."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as file:
        return file.read(1) == pickle.PROTO


def _unpickling_reason(exc: Exception) -> str:
    """The first line of why torch's unpickler refused a file, without its advice or colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    # torch puts its reason after this marker, below generic advice about weights_only=False.
    text = text.split("WeightsUnpickler error:", 1)[-1]
    line = _first_line(text)
    return line.split(". Please use", 1)[0]  # drop the add_safe_globals advice that follows


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no reason given")


def _model_section(path: Path, config: Any) -> dict[str, Any]:
    """`config["model"]`, the YAML `model:` section; a missing config or section means all defaults."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConversionError(f"{path}: 'config' should be the training config as a dict, got {type(config).__name__}")
    section = config.get("model")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConversionError(f"{path}: config['model'] should be a dict, got {type(section).__name__}")
    return section


def _check_model_keys(path: Path, settings: dict[str, Any]) -> None:
    """Refuse any must-match key that differs from the reference, and any unknown key not a loader option."""
    for key, value in settings.items():
        row = MODEL_KEYS.get(key)
        if row is None:
            if not _is_loader_option(key, value):
                raise ConversionError(
                    f"{path}: unknown key config['model'][{key!r}] = {value!r} could change the model, so it is "
                    f"refused ({UNKNOWN_KEY_RULE}); please report it with the checkpoint's config"
                )
        elif row.refuses_other_values and not _same_value(value, row.reference):
            raise ConversionError(
                f"{path}: config['model'][{key!r}] is {value!r} but the reference value is {row.reference!r} "
                f"({row.note}); this package implements only the reference, so it cannot convert this checkpoint"
            )


def _same_value(value: Any, reference: Any) -> bool:
    """YAML-typed comparison: booleans only with booleans, numbers as numbers, anything else exactly."""
    if isinstance(reference, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(reference, bool) and value == reference
    if isinstance(reference, numbers.Real):
        return isinstance(value, numbers.Real) and math.isclose(value, reference, rel_tol=NUMBER_TOLERANCE)
    return type(value) is type(reference) and value == reference


def _is_loader_option(key: str, value: Any) -> bool:
    return key.endswith(LOADER_OPTION_SUFFIXES) and (value is None or isinstance(value, (str, bool)))


def _gate_mode(path: Path, settings: dict[str, Any]) -> str:
    """The converted default gate: `semantic_gate_mode`, or `off` when `semantic_gate_enabled` is false."""
    enabled = settings.get("semantic_gate_enabled", MODEL_KEYS["semantic_gate_enabled"].reference)
    mode = settings.get("semantic_gate_mode", MODEL_KEYS["semantic_gate_mode"].reference)
    if not isinstance(enabled, bool):
        raise ConversionError(
            f"{path}: config['model']['semantic_gate_enabled'] must be true or false, got {enabled!r}"
        )
    if mode is False:  # YAML 1.1 (PyYAML) reads an unquoted `off` as the boolean false
        mode = "off"
    if mode not in GATE_MODES:
        raise ConversionError(
            f"{path}: config['model']['semantic_gate_mode'] is {mode!r}, not one of {', '.join(GATE_MODES)}"
        )
    return mode if enabled else "off"


def _default_gate_mode(folds: list[dict[str, Any]]) -> str:
    """The gate mode all folds agree on (one model has one default gate)."""
    modes = {fold["gate_mode"] for fold in folds}
    if len(modes) > 1:
        per_file = ", ".join(f"{fold['path']}: {fold['gate_mode']}" for fold in folds)
        raise ConversionError(
            "the checkpoints disagree on the gate (from semantic_gate_enabled and semantic_gate_mode): " + per_file
        )
    return modes.pop()


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
