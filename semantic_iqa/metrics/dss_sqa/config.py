"""DSS-SQA's settings as plain data: preprocessing, heads, gate, backbones, folds.

Defaults are the reference values (docs/weights-format.md). In a weights folder's
`config.json` these fields sit beside the envelope the shared weights I/O adds (format,
metric name, file lists with their sha256).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ...config import CLIP_MEAN, CLIP_STD, BackboneSpec, build_dataclass, known_fields
from ...errors import InvalidOptionError, WeightsFormatError

GATE_MODES = ("hard", "soft", "off")


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
        """Parse the settings of a `config.json` (without its envelope); `WeightsFormatError` if wrong."""
        body = dict(raw)
        try:
            return cls(
                structure=build_dataclass(BackboneSpec, body.pop("structure")),
                semantic=build_dataclass(BackboneSpec, body.pop("semantic")),
                preprocess=build_dataclass(PreprocessConfig, body.pop("preprocess", {})),
                head=build_dataclass(HeadConfig, body.pop("head", {})),
                gate=build_dataclass(GateConfig, body.pop("gate", {})),
                **known_fields(cls, body),
            )
        except KeyError as exc:
            raise WeightsFormatError(f"config.json lacks the required entry {exc}") from None
        except (TypeError, InvalidOptionError) as exc:  # missing dataclass fields, bad gate settings
            raise WeightsFormatError(f"config.json: {exc}") from None


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
