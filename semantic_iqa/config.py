"""Configuration shared by every metric: where a frozen backbone comes from, and CLIP's
normalisation. Each metric's own settings live in its sub-package
(`semantic_iqa.metrics.<name>.config`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .errors import WeightsFormatError

# CLIP's normalisation (OpenAI's values); both metrics use it.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# What a backbone folder holds, in its library's own format: a `config.json` and one
# weights file, the first of these that exists. transformers may fall back to
# `pytorch_model.bin` (read by its `weights_only=True` loader) because the reference CLIP
# repo has no safetensors file at the pinned commit; timm folders must be safetensors.
BACKBONE_CONFIG_FILE = "config.json"
BACKBONE_WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    "timm": ("model.safetensors",),
    "transformers": ("model.safetensors", "pytorch_model.bin"),
}


@dataclass(frozen=True)
class BackboneSpec:
    """Where a frozen backbone comes from.

    Exactly one of `repo_id` (a Hugging Face Hub repo, pinned by `revision`) or `path`
    (a sub-folder of the weights folder) says where its weights are.
    """

    library: str  # "timm" (structure) or "transformers" (semantic)
    name: str  # architecture or model name, for people and model cards
    repo_id: str | None = None
    revision: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if (self.repo_id is None) == (self.path is None):
            raise WeightsFormatError(
                f"backbone {self.name!r}: give exactly one of 'repo_id' or 'path' "
                f"(got repo_id={self.repo_id!r}, path={self.path!r})"
            )


def known_fields(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` if every key is a field of dataclass `cls`, else `WeightsFormatError` naming the others."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise WeightsFormatError(f"config.json has unknown {cls.__name__} entries: {', '.join(unknown)}")
    return raw


def build_dataclass(cls: type, raw: dict[str, Any]) -> Any:
    """`cls(**raw)` from JSON: lists become tuples (the dataclasses hold tuples), unknown keys refused."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in known_fields(cls, dict(raw)).items()}
    return cls(**values)
