"""DreamSim's configuration as plain data, and its JSON form (the settings of `config.json`).

A DreamSim weights folder holds one timm ViT per branch (LoRA already merged, see
`convert.py`), named by role (`dino`, `clip`, `open_clip`); the settings say which branches
there are, in which order their features are concatenated, the square size images are
resized to (aspect not kept), and each branch's normalisation, so preprocessing travels
with the weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ...config import BACKBONE, BackboneSpec
from ...config_fields import IMAGE_SIZE, MEAN, PROVENANCE, STD, Field, Items, Nullable, Settings, Text
from ...errors import InvalidOptionError
from .branches import BRANCHES, Branch, branch

ROLES = ("dino", "clip", "open_clip")
MAX_BRANCHES = len(ROLES)

FIELDS: dict[str, Field] = {
    "model_type": Text(max_length=64),
    "branches": Items(Text(max_length=64), 1, MAX_BRANCHES),  # which names exist: `__post_init__`
    "image_size": IMAGE_SIZE,
    "means": Items(MEAN, 1, MAX_BRANCHES),
    "stds": Items(STD, 1, MAX_BRANCHES),
    "dino": Nullable(BACKBONE),
    "clip": Nullable(BACKBONE),
    "open_clip": Nullable(BACKBONE),
    "provenance": PROVENANCE,
}


@dataclass(frozen=True)
class DreamSimConfig:
    """Everything needed to rebuild a DreamSim model, except tensors.

    model_type: the authors' name of the model ("ensemble", "dino_vitb16", ...), for people.
    branches: the branch names, in the order their features are concatenated.
    image_size: images are resized to image_size x image_size (bicubic, aspect NOT kept).
    means, stds: each branch's normalisation, in `branches` order.
    dino, clip, open_clip: where each branch's backbone is (`None` for a role not used).
    """

    model_type: str
    branches: tuple[str, ...]
    dino: BackboneSpec | None = None
    clip: BackboneSpec | None = None
    open_clip: BackboneSpec | None = None
    image_size: int = 224
    means: tuple[tuple[float, float, float], ...] = ()
    stds: tuple[tuple[float, float, float], ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = [branch(name) for name in self.branches]  # InvalidOptionError for an unknown name
        roles = [item.role for item in known]
        if len(set(roles)) != len(roles):
            raise InvalidOptionError(f"DreamSim takes at most one branch per role; got {', '.join(self.branches)}")
        for role in ROLES:
            if (role in roles) != (getattr(self, role) is not None):
                need = "needs" if role in roles else "has no branch for"
                raise InvalidOptionError(f"DreamSim branches {', '.join(self.branches)}: {need} a {role!r} backbone")
        if not len(self.means) == len(self.stds) == len(self.branches):
            raise InvalidOptionError(
                f"DreamSim needs one mean and one std per branch: {len(self.branches)} branches, "
                f"{len(self.means)} means, {len(self.stds)} stds"
            )

    @classmethod
    def for_branches(cls, model_type: str, branches: tuple[Branch, ...], **specs: Any) -> DreamSimConfig:
        """The config of `branches` with their own normalisations; `specs` are the backbones by role."""
        return cls(
            model_type=model_type,
            branches=tuple(item.name for item in branches),
            means=tuple(item.mean for item in branches),
            stds=tuple(item.std for item in branches),
            **specs,
        )

    def branch_list(self) -> tuple[Branch, ...]:
        """The branches, in concatenation order."""
        return tuple(BRANCHES[name] for name in self.branches)

    def backbone_specs(self) -> dict[str, BackboneSpec]:
        """The backbones by role, in concatenation order."""
        return {item.role: getattr(self, item.role) for item in self.branch_list()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every setting (tuples as lists)."""
        body = asdict(self)
        body["branches"] = list(self.branches)
        body["means"] = [list(mean) for mean in self.means]
        body["stds"] = [list(std) for std in self.stds]
        return body

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DreamSimConfig:
        """Parse `to_dict` output; `WeightsConfigError` / `WeightsFormatError` name what is wrong."""
        return SETTINGS.load(raw)


SETTINGS = Settings(DreamSimConfig, FIELDS, strict=True)
