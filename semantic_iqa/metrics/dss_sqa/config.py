"""DSS-SQA's settings as plain data: preprocessing, heads, gate, backbones, folds.

Defaults are the reference values (docs/weights-format.md). In a weights folder's
`config.json` these fields sit beside the envelope the shared weights I/O adds (format,
metric name, file lists with their sha256).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ...config import BACKBONE, CLIP_MEAN, CLIP_STD, BackboneSpec
from ...config_fields import (
    FEATURE_DIM,
    IMAGE_SIZE,
    MAX_IMAGE_SIZE,
    MEAN,
    PROVENANCE,
    STD,
    Field,
    Integer,
    Items,
    Number,
    Settings,
    Text,
)
from ...errors import InvalidOptionError, WeightsConfigError

GATE_MODES = ("hard", "soft", "off")

# Bounds of DSS-SQA's own settings in a weights folder (the shared ones, image size, mean,
# std, feature widths, are in `semantic_iqa.config_fields`). Each keeps what a damaged or
# hostile config.json can make `from_pretrained` allocate to what the architecture needs.
MAX_FOLDS = 64  # cross-validated heads: the reference has 5, 10-fold is common; 64 leaves room
MAX_HEAD_WIDTH = 4096  # a fold head's hidden layers (the reference: 256 and 128)
MAX_CLASSES = 101  # quality classes of a head (the reference: 6, scores 0..5); a 0..100 scale at most
# Logits the gate sets or adds: softmax is already one-hot at 100; 1000 keeps them finite in bf16.
MAX_LOGIT = 1000.0
# All fold heads together (num_folds x [fusion_dim x hidden_1 + ...]): the reference has 7.1 M;
# 100 M parameters is 400 MB of float32, where each size within its own bound could ask for 50 GB.
MAX_HEAD_PARAMETERS = 100_000_000

# The settings of config.json, by section: `SETTINGS` (below) checks them with `semantic_iqa.config_fields`.
PREPROCESS_FIELDS: dict[str, Field] = {"image_size": IMAGE_SIZE, "mean": MEAN, "std": STD}
HEAD_FIELDS: dict[str, Field] = {
    "hidden_dims": Items(Integer(1, MAX_HEAD_WIDTH, "MAX_HEAD_WIDTH"), 2, 2),
    "dropout": Items(Number(0.0, 1.0, high_open=True), 2, 2),
    "num_classes": Integer(2, MAX_CLASSES, "MAX_CLASSES"),
    "norm_eps": Number(0.0, 1.0, low_open=True),
    "norm_momentum": Number(0.0, 1.0),
}
GATE_FIELDS: dict[str, Field] = {
    "mode": Text(max_length=16),  # which modes exist is GateConfig's own check
    "low": Number(-1.0, 1.0),  # thresholds on a cosine
    "high": Number(-1.0, 1.0),
    "hard_logit": Number(0.0, MAX_LOGIT),
    "soft_strength": Number(0.0, MAX_LOGIT),
}
FIELDS: dict[str, Field] = {
    "structure_dim": FEATURE_DIM,
    "semantic_dim": FEATURE_DIM,
    "num_folds": Integer(1, MAX_FOLDS, "MAX_FOLDS"),
    "provenance": PROVENANCE,
}  # with the backbones and the sections: `SETTINGS`, below the dataclasses


@dataclass(frozen=True)
class PreprocessConfig:
    """Resize-pad-square to `image_size`, then normalise with `mean`/`std` (both branches)."""

    image_size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD


@dataclass(frozen=True)
class HeadConfig:
    """Linear -> BatchNorm -> SiLU -> Dropout -> Linear -> SiLU -> Dropout -> Linear, per fold."""

    hidden_dims: tuple[int, int] = (256, 128)
    dropout: tuple[float, float] = (0.5, 0.2)
    num_classes: int = 6
    norm_eps: float = 1e-5
    norm_momentum: float = 0.1


@dataclass(frozen=True)
class GateConfig:
    """Semantic gate: veto pairs whose CLIP cosine says the content changed (eval mode only).

    `hard`: cos < low -> logits become +hard_logit for class 0 and -hard_logit elsewhere.
    `soft`: as hard below `low`; for low <= cos < high, class 0 gains `soft_strength * alpha`
    and every other class loses it, alpha = (high - cos) / (high - low) clamped to [0, 1].
    """

    mode: str = "hard"
    low: float = 0.4
    high: float = 0.5
    hard_logit: float = 12.0
    soft_strength: float = 6.0

    def __post_init__(self) -> None:
        check_gate_mode(self.mode)
        if not self.low < self.high:
            raise InvalidOptionError(f"gate thresholds need low < high, got low={self.low}, high={self.high}")


def check_gate_mode(mode: str) -> str:
    """Return `mode` if it is a known gate mode, else raise `InvalidOptionError`."""
    if mode not in GATE_MODES:
        raise InvalidOptionError(f"unknown gate mode {mode!r}; choose one of {', '.join(GATE_MODES)}")
    return mode


@dataclass(frozen=True)
class DSSSQAConfig:
    """Everything needed to rebuild a DSS-SQA model, except tensors."""

    structure: BackboneSpec
    semantic: BackboneSpec
    structure_dim: int = 768
    semantic_dim: int = 1024
    num_folds: int = 5
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def fusion_dim(self) -> int:
        """Width of the fused feature: 3 structure blocks, 3 semantic blocks, 1 cosine."""
        return 3 * self.structure_dim + 3 * self.semantic_dim + 1

    def with_gate(self, **changes: Any) -> DSSSQAConfig:
        """A copy with some gate settings changed."""
        return replace(self, gate=replace(self.gate, **changes))

    def backbone_specs(self) -> dict[str, BackboneSpec]:
        """The frozen encoders by role, in the order the model runs them."""
        return {"structure": self.structure, "semantic": self.semantic}

    def with_backbones(self, **specs: BackboneSpec) -> DSSSQAConfig:
        """A copy with some backbones' specs replaced (by role)."""
        return replace(self, **specs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every setting."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DSSSQAConfig:
        """Parse the settings of a `config.json` (without its envelope); `WeightsFormatError` if wrong.

        Every value is checked by `SETTINGS` first (type and range; `WeightsConfigError`
        naming the field), so nothing is built from a wrong one; then the heads' total size.
        """
        config = SETTINGS.load(raw)
        config.check_head_size()
        return config

    def head_parameters(self) -> int:
        """Parameters and statistics of all fold heads together (7.1 M for the reference)."""
        (hidden1, hidden2), classes = self.head.hidden_dims, self.head.num_classes
        per_fold = (self.fusion_dim + 1) * hidden1 + 4 * hidden1 + (hidden1 + 1) * hidden2 + (hidden2 + 1) * classes
        return self.num_folds * per_fold

    def check_head_size(self) -> None:
        """`WeightsConfigError` if the fold heads together exceed `MAX_HEAD_PARAMETERS`."""
        if self.head_parameters() > MAX_HEAD_PARAMETERS:
            raise WeightsConfigError(
                "num_folds x head.hidden_dims",
                [self.num_folds, list(self.head.hidden_dims)],
                f"fold heads of at most {MAX_HEAD_PARAMETERS:,} parameters in all (MAX_HEAD_PARAMETERS); "
                f"these would have {self.head_parameters():,}",
            )

    def check_encoders(self, encoders: dict[str, Any]) -> None:
        """`WeightsConfigError` if `preprocess.image_size` is a size the loaded structure backbone cannot take.

        Called by `from_pretrained` once the backbones are built, before the heads and any
        scoring: a ViT cuts its input into patches, so the size must be a multiple of the
        patch size (DINOv3: 16), and its trained size if the model takes no other. The
        semantic backbone resizes to its own size, so it takes any.
        """
        model = getattr(encoders.get("structure"), "model", None)
        embed = getattr(model, "patch_embed", None)
        patch, size = getattr(embed, "patch_size", None), self.preprocess.image_size
        if patch is None:
            return
        patch = tuple(patch) if isinstance(patch, (tuple, list)) else (int(patch), int(patch))
        if any(size % side for side in patch):
            raise WeightsConfigError(
                "preprocess.image_size",
                size,
                f"a multiple of {patch[0]} (the structure backbone's patch size) up to {MAX_IMAGE_SIZE}",
            )
        trained = tuple(getattr(embed, "img_size", None) or ())
        if getattr(embed, "strict_img_size", False) and trained and trained != (size, size):
            raise WeightsConfigError("preprocess.image_size", size, f"{trained[0]} (the structure backbone's size)")


# The one parser of config.json (`semantic_iqa.config_fields.Settings`), tolerant: DSS-SQA's format
# has always let a folder leave out settings that have defaults (the sections, the widths, the folds).
SETTINGS = Settings(
    DSSSQAConfig,
    {
        "structure": BACKBONE,
        "semantic": BACKBONE,
        **FIELDS,
        "preprocess": Settings(PreprocessConfig, PREPROCESS_FIELDS),
        "head": Settings(HeadConfig, HEAD_FIELDS),
        "gate": Settings(GateConfig, GATE_FIELDS),
    },
)


# The reference backbones, pinned to Hub commits: the ONE place their revisions are set.
# Training without a base model (`semantic-iqa train` with no `--backbones-from`) builds the
# model on these, and weights folders trained that way reference them. The CLIP commit is
# the repo's `main` that holds only `pytorch_model.bin` (no safetensors): it is loaded with
# transformers' `weights_only=True` loader, see `semantic_iqa.backbones`.
REFERENCE_CONFIG = DSSSQAConfig(
    structure=BackboneSpec(
        library="timm",
        name="vit_base_patch16_dinov3",
        repo_id="timm/vit_base_patch16_dinov3.lvd1689m",
        revision="c6a5fb7d12bbd3cf3b0079253141c3332aaed7da",
    ),
    semantic=BackboneSpec(
        library="transformers",
        name="clip-vit-large-patch14-336",
        repo_id="openai/clip-vit-large-patch14-336",
        revision="ce19dc912ca5cd21c8a653c79e251e808ccabcd1",
    ),
)
"""The reference architecture: DINOv3 ViT-B/16 (timm) + CLIP ViT-L/14-336 (transformers)."""

# Sizes of the reference backbones, to build them without a download (random weights, or
# weights taken from the authors' checkpoints): timm model arguments for the structure
# encoder, `CLIPVisionConfig` values of openai/clip-vit-large-patch14-336 for the semantic one.
REFERENCE_STRUCTURE_ARGS: dict[str, Any] = {}
REFERENCE_SEMANTIC_CONFIG: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
