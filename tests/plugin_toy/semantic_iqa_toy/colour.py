"""toy_colour: a learned colour distance of a distorted image from its reference (FR, lower is better)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from semantic_iqa.inputs import load_padded, load_padded_batch
from semantic_iqa.metric import Metric
from semantic_iqa.metric_output import MetricOutput

from .common import ToyConfig, model_card


@dataclass
class ColourOutput(MetricOutput):
    """`score` [B], then the declared result field `channel_gaps` [B, 3]."""

    channel_gaps: torch.Tensor


class ColourDistance(Metric):
    """score = sum over R, G, B of softplus(w_c) * pooled |ref_c - dist_c|: 0 for the same colours."""

    name = "toy_colour"
    config_class = ToyConfig
    encoder_classes: dict = {}

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.channel_weights = nn.Parameter(torch.zeros(3))  # the trained part: one weight per channel

    @classmethod
    def from_parts(cls, config: ToyConfig, encoders: dict) -> ColourDistance:
        return cls(config)

    def frozen_encoders(self) -> dict:
        return {}

    def head_parts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"head": {"channel_weights": self.channel_weights.detach().clone()}}

    def load_head_parts(self, parts: list[dict[str, torch.Tensor]]) -> None:
        with torch.no_grad():
            self.channel_weights.copy_(parts[0]["channel_weights"])

    def model_card(self) -> str:
        return model_card("Toy colour distance", "A learned colour distance; lower is better, 0 = the same colours.")

    def image_transform(self) -> Callable:
        return functools.partial(load_padded, size=self.config.image_size)

    def score_batch(self, images, extras, *, reference_cache=None, pooling: str | None = None) -> ColourOutput:
        score, gaps = self._distance(images["ref"], images["dist"], pooling)
        return ColourOutput(score=score, channel_gaps=gaps)

    def differentiable_score(
        self, images, extras=None, *, reference_cache=None, checkpoint_activations=False, pooling: str | None = None
    ) -> torch.Tensor:
        ref, dist = (load_padded_batch(images[role], self.config.image_size) for role in ("ref", "dist"))
        return self._distance(ref, dist, pooling)[0]

    def _distance(
        self, ref: torch.Tensor, dist: torch.Tensor, pooling: str | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gaps = (ref - dist).abs().flatten(2)  # [B, 3, pixels]
        pooled = gaps.amax(2) if pooling == "max" else gaps.mean(2)  # None: the declared default, mean
        return (pooled * F.softplus(self.channel_weights)).sum(1), pooled


def build_tiny(seed: int = 0) -> ColourDistance:
    """A toy_colour model with random channel weights (the registry entry's `tiny` builder)."""
    model = ColourDistance(ToyConfig())
    with torch.no_grad():
        model.channel_weights.copy_(torch.randn(3, generator=torch.Generator().manual_seed(seed)))
    return model.eval()
