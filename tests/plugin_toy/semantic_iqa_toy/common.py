"""What both toy metrics share: their settings (config.json) and their model card."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from semantic_iqa.config_fields import Integer, parse_fields
from semantic_iqa.errors import WeightsConfigError

# Every setting with its check: a weights folder is untrusted input.
_FIELDS = {"image_size": Integer(8, 256)}


@dataclass(frozen=True)
class ToyConfig:
    """The settings of a toy weights folder: the side of the square images are resampled to."""

    image_size: int = 32

    def to_dict(self) -> dict[str, Any]:
        """The settings as written into config.json."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ToyConfig:
        """The settings read back; `WeightsConfigError` for a wrong or unknown one."""
        for name in raw:
            if name not in _FIELDS:
                raise WeightsConfigError(name, raw[name], "no such setting (toy metrics have: image_size)")
        return cls(**parse_fields(_FIELDS, raw))

    def backbone_specs(self) -> dict:
        """No backbone: the toys learn a few scalars on the pixels themselves."""
        return {}


def model_card(title: str, description: str) -> str:
    """The weights folder's README.md, with Hub metadata."""
    data = ModelCardData(library_name="semantic-iqa", tags=["image-quality-assessment", "semantic-iqa-toy"])
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n# {title}\n\n{description}\n"))
