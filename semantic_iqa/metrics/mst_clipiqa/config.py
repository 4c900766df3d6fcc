"""MST-CLIPIQA's configuration as plain data, and its JSON form.

Defaults are the reference values (/work/shared/reference/mst-clipiqa.md): CLIP ViT-B/32
(coarse stream and text side) and ViT-B/16 (fine stream), 224 px, fusion 512 -> 128 -> 512,
five quality templates. The Hub revisions are pinned in ONE place, `REFERENCE_BACKBONES`.
In a weights folder's `config.json` these fields sit beside the envelope the shared
weights I/O adds (format, metric name, file lists with their sha256).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ...config import BACKBONE, CLIP_MEAN, CLIP_STD, BackboneSpec
from ...config_fields import (
    FEATURE_DIM,
    IMAGE_SIZE,
    MEAN,
    PROVENANCE,
    STD,
    Field,
    Integer,
    Items,
    Settings,
    Text,
)
from ...errors import InvalidOptionError, WeightsConfigError

# "A": no prompt, score = expected quality level in [1, 5] from five text templates.
# "B": prompt-anchored, cross-attention to the generation prompt, unbounded regression output.
VARIANTS = ("A", "B")
QUALITY_TEMPLATE = "a photo with {} quality"
QUALITY_WORDS = ("bad", "poor", "fair", "good", "perfect")  # level 1 .. 5, in this order

# The reference backbones, pinned to the repos' own commits (the `main` snapshots widely
# used; loaded from safetensors where the commit has them, else `pytorch_model.bin` through
# transformers' `weights_only=True` loader, see `semantic_iqa.backbones`).
_PATCH32 = ("openai/clip-vit-base-patch32", "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268")
_PATCH16 = ("openai/clip-vit-base-patch16", "57c216476eefef5ab752ec549e440a49ae4ae5f3")
REFERENCE_BACKBONES = {
    "coarse": BackboneSpec("transformers", "clip-vit-base-patch32", repo_id=_PATCH32[0], revision=_PATCH32[1]),
    "fine": BackboneSpec("transformers", "clip-vit-base-patch16", repo_id=_PATCH16[0], revision=_PATCH16[1]),
    "text": BackboneSpec("transformers", "clip-vit-base-patch32", repo_id=_PATCH32[0], revision=_PATCH32[1]),
}

# Sizes of the reference towers (the `vision_config` / `text_config` of the Hub repos), to
# build them without a download: random weights, or weights from the authors' checkpoints.
_VIT_B = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "projection_dim": 512,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
REFERENCE_COARSE_CONFIG: dict[str, Any] = {**_VIT_B, "patch_size": 32}
REFERENCE_FINE_CONFIG: dict[str, Any] = {**_VIT_B, "patch_size": 16}
REFERENCE_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": 77,
    "projection_dim": 512,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    # The Hub repos' values: eos_token_id 2 selects transformers' legacy pooling (argmax of the
    # ids = CLIP's end token 49407, the highest id), which is what the checkpoints were trained with.
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}


# Bounds of MST-CLIPIQA's own settings in a weights folder (the shared ones are in
# `semantic_iqa.config_fields`); checked by `MSTCLIPIQAConfig.from_dict` before anything is built.
MAX_PROMPT_TOKENS = 77  # CLIP's text tower has 77 positions, start and end tokens included
MAX_QUALITY_LEVELS = 10  # quality words, one per level of the score (the reference: 5)
MAX_TEMPLATE_LENGTH = 200  # characters of the quality template (tokens are cut at 77 anyway)

FIELDS: dict[str, Field] = {
    "variant": Text(max_length=8),  # which variants exist is `check_variant`'s
    "image_size": IMAGE_SIZE,  # and the towers' own size: `check_encoders`
    "mean": MEAN,
    "std": STD,
    "embed_dim": FEATURE_DIM,
    "hidden_dim": FEATURE_DIM,
    # Exactly one "{}" and no other braces: `str.format` with anything else raises, or reads attributes.
    "quality_template": Text(
        max_length=MAX_TEMPLATE_LENGTH,
        pattern=r"[^{}]*\{\}[^{}]*",
        description=f"a string of at most {MAX_TEMPLATE_LENGTH} characters with one '{{}}' for the quality word",
    ),
    "quality_words": Items(Text(max_length=64), 2, MAX_QUALITY_LEVELS),
    "max_prompt_tokens": Integer(2, MAX_PROMPT_TOKENS, "MAX_PROMPT_TOKENS"),
    "num_heads": FEATURE_DIM,  # and a divisor of embed_dim (checked when the config is built)
    "provenance": PROVENANCE,
    "coarse": BACKBONE,
    "fine": BACKBONE,
    "text": BACKBONE,
}


@dataclass(frozen=True)
class MSTCLIPIQAConfig:
    """Everything needed to rebuild an MST-CLIPIQA model, except tensors.

    `text` is the text tower the head's text side comes from: variant B runs it on every
    prompt; variant A ran it once, to compute the stored template features, and records it
    for provenance (a loaded variant-A model needs no text model).
    """

    variant: str = "A"
    coarse: BackboneSpec = REFERENCE_BACKBONES["coarse"]
    fine: BackboneSpec = REFERENCE_BACKBONES["fine"]
    text: BackboneSpec = REFERENCE_BACKBONES["text"]
    image_size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    embed_dim: int = 512  # feature width of both streams, of the fused feature and of the text side
    hidden_dim: int = 128  # width of the fusion gate's bottleneck (W_h)
    quality_template: str = QUALITY_TEMPLATE
    quality_words: tuple[str, ...] = QUALITY_WORDS
    max_prompt_tokens: int = 77
    num_heads: int = 8  # heads of variant B's cross-attention
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_variant(self.variant)
        if self.embed_dim % self.num_heads:
            raise InvalidOptionError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")

    @property
    def templates(self) -> tuple[str, ...]:
        """The quality prompts, level 1 first: "a photo with bad quality", ..."""
        return tuple(self.quality_template.format(word) for word in self.quality_words)

    def backbone_specs(self) -> dict[str, BackboneSpec]:
        """The encoders a loaded model needs, by role: both image streams, and the text tower for B.

        Variant A's text side is the stored template features, so it needs no text model.
        """
        specs = {"coarse": self.coarse, "fine": self.fine}
        if self.variant == "B":
            specs["text"] = self.text
        return specs

    def with_backbones(self, **specs: BackboneSpec) -> MSTCLIPIQAConfig:
        """A copy with some backbones' specs replaced (by role)."""
        return replace(self, **specs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every setting (tuples as lists)."""
        body = asdict(self)
        for name, value in body.items():
            if isinstance(value, tuple):
                body[name] = list(value)
        return body

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MSTCLIPIQAConfig:
        """Parse `to_dict` output: type and range of every value first (`WeightsConfigError`
        naming it), `WeightsFormatError` for unknown or missing entries (`SETTINGS`, strict)."""
        return SETTINGS.load(raw)

    def check_encoders(self, encoders: dict[str, Any]) -> None:
        """`WeightsConfigError` if the settings do not fit the loaded towers.

        Called by `from_pretrained` once the towers are built, before the heads and any
        scoring: the CLIP image towers take images of their own size only (no interpolation),
        and the prompt cannot be longer than the text tower's positions.
        """
        for role in ("coarse", "fine"):
            size = getattr(encoders.get(role), "image_size", None)
            if size is not None and size != self.image_size:
                raise WeightsConfigError("image_size", self.image_size, f"{size} (the {role} tower's image size)")
        positions = getattr(encoders.get("text"), "max_positions", None)
        if positions is not None and self.max_prompt_tokens > positions:
            raise WeightsConfigError(
                "max_prompt_tokens", self.max_prompt_tokens, f"at most {positions} (the text tower's positions)"
            )

    def with_variant(self, variant: str) -> MSTCLIPIQAConfig:
        """A copy for the other variant (checked)."""
        return replace(self, variant=check_variant(variant))


# The one parser of config.json (`semantic_iqa.config_fields.Settings`), strict: `to_dict` writes
# every entry, so one missing means the file was edited or cut short.
SETTINGS = Settings(MSTCLIPIQAConfig, FIELDS, strict=True)


def check_variant(variant: str) -> str:
    """Return `variant` if it is "A" or "B", else raise `InvalidOptionError`."""
    if variant not in VARIANTS:
        raise InvalidOptionError(f"unknown MST-CLIPIQA variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant
