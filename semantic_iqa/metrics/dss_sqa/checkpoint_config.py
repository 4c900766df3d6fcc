"""The authors' `config["model"]` checked key by key against the reference run's table.

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
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from ...errors import ConversionError
from .config import GATE_MODES


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


def model_section(path: Path, config: Any) -> dict[str, Any]:
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


def check_model_keys(path: Path, settings: dict[str, Any]) -> None:
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


def gate_mode(path: Path, settings: dict[str, Any]) -> str:
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


def default_gate_mode(folds: list[dict[str, Any]]) -> str:
    """The gate mode all folds agree on (one model has one default gate)."""
    modes = {fold["gate_mode"] for fold in folds}
    if len(modes) > 1:
        per_file = ", ".join(f"{fold['path']}: {fold['gate_mode']}" for fold in folds)
        raise ConversionError(
            "the checkpoints disagree on the gate (from semantic_gate_enabled and semantic_gate_mode): " + per_file
        )
    return modes.pop()
