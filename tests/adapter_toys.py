"""Two toy metrics the adapter tests register at run time: nothing in the adapters may know them.

- `toy_adapter_fr`: full reference, LOWER is better, unbounded above: a weighted distance
  between the mean colours of reference and distorted image (scoring option `mode`, loss
  option `margin`, a reference cache). A BatchNorm in its head: train mode would change it.
- `toy_adapter_nr`: no reference, higher is better in [1, 5]: brightness (scoring option
  `channel`), with the default `training_loss` (5 - score).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from semantic_iqa import Metric, MetricInfo
from semantic_iqa.contract import MetricOption
from semantic_iqa.inputs import as_float_batch, check_same_length, load_padded
from semantic_iqa.metric_output import MetricOutput
from semantic_iqa.reference_cache import ReferenceCache


@dataclass(frozen=True)
class ToyConfig:
    image_size: int = 16

    def backbone_specs(self) -> dict:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ToyConfig:
        return cls(**raw)


class _Toy(Metric):
    config_class = ToyConfig
    encoder_classes: dict = {}

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.tensor(2.0))
        self.norm = nn.BatchNorm1d(3)

    @classmethod
    def from_parts(cls, config, encoders):
        return cls(config)

    def frozen_encoders(self):
        return {}

    def head_parts(self):
        return {"head": {name: tensor.detach().clone() for name, tensor in self.state_dict().items()}}

    def load_head_parts(self, parts):
        self.load_state_dict(parts[0])

    def model_card(self):
        return f"# {self.name}\n"

    def image_transform(self):
        return functools.partial(load_padded, size=self.config.image_size)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3]: mean colour, through the BatchNorm (identity in eval mode until trained)."""
        return self.norm(images.mean(dim=(2, 3)))

    def score_batch(self, images, extras, *, reference_cache=None, **options):
        return MetricOutput(self.differentiable_score(images, extras, reference_cache=reference_cache, **options))


class ToyDistance(_Toy):
    name = "toy_adapter_fr"

    def differentiable_score(
        self, images, extras=None, *, reference_cache=None, checkpoint_activations=False, mode=None
    ) -> torch.Tensor:
        ref, dist = as_float_batch(images["ref"], "ref"), as_float_batch(images["dist"], "dist")
        check_same_length(ref, dist)
        if reference_cache is not None:
            ref_features = reference_cache.features(ref.detach())
        else:
            with torch.no_grad():
                ref_features = self.encode(ref)
        gap = (self.encode(dist) - ref_features).abs()
        return self.weight * (gap.square() if mode == "square" else gap).sum(dim=1)

    def training_loss(
        self, images, extras=None, *, reference_cache=None, checkpoint_activations=False, margin=0.0
    ) -> torch.Tensor:
        score = self.differentiable_score(images, extras, reference_cache=reference_cache)
        return (score - margin).clamp(min=0.0)

    def make_reference_cache(self, max_items: int = 4096) -> ReferenceCache:
        return ReferenceCache(self, max_items)


class ToyBrightness(_Toy):
    name = "toy_adapter_nr"

    def differentiable_score(
        self, images, extras=None, *, reference_cache=None, checkpoint_activations=False, channel=None
    ) -> torch.Tensor:
        pixels = as_float_batch(images["image"], "images")
        pixels = pixels[:, :1] if channel == "red" else pixels
        return 1 + 4 * torch.sigmoid(self.weight * (pixels.mean(dim=(1, 2, 3)) - 0.5))


TOY_FR = MetricInfo(
    name="toy_adapter_fr",
    title="Toy distance",
    kind="FR",
    higher_is_better=False,
    score_range=(0.0, None),
    summary="mean-colour distance, for the adapter tests",
    target=f"{__name__}:ToyDistance",
    inputs=("ref", "dist"),
    scoring_options=(MetricOption("mode", str, choices=("abs", "square"), help="abs or squared differences"),),
    loss_options=(MetricOption("margin", float, default=0.0, help="distances below it cost nothing"),),
    pyiqa_presets={"toy_adapter_fr": {}, "toy_adapter_fr_square": {"mode": "square"}},
)

TOY_NR = MetricInfo(
    name="toy_adapter_nr",
    title="Toy brightness",
    kind="NR",
    higher_is_better=True,
    score_range=(1.0, 5.0),
    summary="brightness, for the adapter tests",
    target=f"{__name__}:ToyBrightness",
    inputs=("image",),
    scoring_options=(MetricOption("channel", str, choices=("all", "red"), help="which channels count"),),
)

# A prompt input: pyiqa's calls have no place for it.
TOY_PROMPT = MetricInfo(
    name="toy_adapter_prompt",
    title="Toy prompt",
    kind="NR",
    higher_is_better=True,
    score_range=(1.0, 5.0),
    summary="needs a prompt, for the adapter tests",
    target=f"{__name__}:ToyBrightness",
    inputs=("image", "prompt"),
)


def expected_distance(model: ToyDistance, ref: torch.Tensor, dist: torch.Tensor, square: bool = False) -> torch.Tensor:
    """The toy's score, computed here from its definition (BatchNorm in eval mode, default statistics)."""
    eps = model.norm.eps
    gap = (dist.mean(dim=(2, 3)) - ref.mean(dim=(2, 3))).abs() / (1 + eps) ** 0.5
    return model.weight.detach() * (gap.square() if square else gap).sum(dim=1)
