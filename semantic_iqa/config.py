"""Configuration shared by every metric: where a frozen backbone comes from, and CLIP's
normalisation. Each metric's own settings live in its sub-package
(`semantic_iqa.metrics.<name>.config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config_fields import Field, HubRepoId, Nullable, RelativePath, Settings, Text
from .errors import WeightsConfigError, WeightsFormatError

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


# Revision of a Hub backbone: a branch, tag or commit, as the Hub names them ('refs/pr/1' too).
_REVISION = Text(pattern=r"(?!.*\.\.)[\w][\w./-]*", description="a Hub commit hash (40 hex digits), tag or branch")

BACKBONE_FIELDS: dict[str, Field] = {
    "library": Text(max_length=64),
    "name": Text(),
    "repo_id": Nullable(HubRepoId()),
    "revision": Nullable(_REVISION),
    "path": Nullable(RelativePath()),
}


class BackboneSettings(Settings):
    """A backbone entry of `config.json` (`BackboneSpec`'s fields), checked like every other setting.

    A backbone is stored in the folder (`path`, checked to stay inside) or referenced on the
    Hub, and then pinned: a `repo_id` without a `revision` would load whatever the repo's main
    branch holds on the day, which no sha256 in the folder covers.
    """

    expected = "a backbone object {library, name, and path or repo_id + revision}"  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__(BackboneSpec, BACKBONE_FIELDS)

    def parse_at(self, value: Any, name: str) -> BackboneSpec:
        if not isinstance(value, dict):
            raise WeightsConfigError(name, value, self.expected)
        spec = super().parse_at(value, name)
        if spec.repo_id is not None and spec.revision is None and spec.path is None:
            raise WeightsConfigError(
                f"{name}.revision", None, f"the Hub commit hash (40 hex digits) that {spec.repo_id} is pinned to"
            )
        return spec


BACKBONE = BackboneSettings()
"""The `Field` of every backbone entry (`structure`, `coarse`, ...) in a metric's `Settings`."""
