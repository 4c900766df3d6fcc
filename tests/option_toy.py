"""Two small metrics registered at run time, for the CLI and API tests (tests/test_cli.py, test_api.py).

`toy_offset` (full reference): score = mean |ref - dist| * scale + `shift`, with two declared
scoring options (`shift`, a float; `pooling`, a choice) and one result field (`gap`).
`toy_level` (no reference): score = mean level * scale, one result field (`dark`). No backbone:
each model is one trained scalar, so every expected score is plain arithmetic. `toy_liar`
declares a field its class never gives (a plug-in whose records differ from its declaration);
`toy_untiny` has no tiny builder. The out-of-tree plug-in package is tests/plugin_toy.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from semantic_iqa.contract import MetricOption, ResultField
from semantic_iqa.inputs import load_padded, load_padded_batch
from semantic_iqa.metric import Metric
from semantic_iqa.metric_output import MetricOutput
from semantic_iqa.registry import MetricInfo, register_metric, unregister_metric

SIZE = 16


@dataclass(frozen=True)
class ToyConfig:
    image_size: int = SIZE

    def backbone_specs(self) -> dict:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ToyConfig:
        return cls(**raw)


@dataclass
class OffsetOutput(MetricOutput):
    gap: torch.Tensor


@dataclass
class LevelOutput(MetricOutput):
    dark: torch.Tensor


class Offset(Metric):
    """FR: mean |ref - dist| (or its max with pooling="max") * scale + shift."""

    name = "toy_offset"
    config_class = ToyConfig
    encoder_classes: dict = {}

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.scale = nn.Parameter(torch.tensor(2.0))

    @classmethod
    def from_parts(cls, config: ToyConfig, encoders: dict) -> Offset:
        return cls(config)

    def frozen_encoders(self) -> dict:
        return {}

    def head_parts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"head": {"scale": self.scale.detach().clone()}}

    def load_head_parts(self, parts: list[dict[str, torch.Tensor]]) -> None:
        with torch.no_grad():
            self.scale.copy_(parts[0]["scale"])

    def model_card(self) -> str:
        return "# toy\n"

    def image_transform(self):
        return functools.partial(load_padded, size=self.config.image_size)

    def _gap(self, images: dict[str, torch.Tensor], pooling: str | None) -> torch.Tensor:
        diff = (images["ref"] - images["dist"]).abs().flatten(1)
        return diff.amax(1) if pooling == "max" else diff.mean(1)

    def score_batch(self, images, extras, *, reference_cache=None, shift=None, pooling=None) -> OffsetOutput:
        gap = self._gap(images, pooling)
        return OffsetOutput(score=gap * self.scale + (shift or 0.0), gap=gap)

    def differentiable_score(self, images, extras=None, *, reference_cache=None, checkpoint_activations=False, **o):
        padded = {role: load_padded_batch(images[role], self.config.image_size) for role in ("ref", "dist")}
        return self._gap(padded, o.get("pooling")) * self.scale + (o.get("shift") or 0.0)


class Level(Offset):
    """NR: mean level * scale; `dark` below a mean level of 0.25."""

    name = "toy_level"

    def score_batch(self, images, extras, *, reference_cache=None) -> LevelOutput:
        level = images["image"].mean(dim=(1, 2, 3))
        return LevelOutput(score=level * self.scale, dark=level < 0.25)

    def differentiable_score(self, images, extras=None, *, reference_cache=None, checkpoint_activations=False):
        return load_padded_batch(images["image"], self.config.image_size).mean(dim=(1, 2, 3)) * self.scale


def build_offset(seed: int = 0) -> Offset:
    return Offset(ToyConfig()).eval()


def build_level(seed: int = 0) -> Level:
    return Level(ToyConfig()).eval()


OFFSET = MetricInfo(
    name="toy_offset",
    title="Toy offset",
    kind="FR",
    higher_is_better=False,
    score_range=(None, None),
    summary="mean absolute difference, scaled and shifted (a test metric)",
    target=f"{__name__}:Offset",
    inputs=("ref", "dist"),
    scoring_options=(
        MetricOption("shift", float, help="added to every score"),
        MetricOption("pooling", str, choices=("mean", "max"), help="mean (default) or max of the differences"),
    ),
    result_fields=(ResultField("gap", "float", "mean absolute difference, in [0, 1]"),),
    tiny=f"{__name__}:build_offset",
)
LEVEL = MetricInfo(
    name="toy_level",
    title="Toy level",
    kind="NR",
    higher_is_better=True,
    score_range=(0.0, 2.0),
    summary="mean level, scaled (a test metric)",
    target=f"{__name__}:Level",
    inputs=("image",),
    result_fields=(ResultField("dark", "bool", "mean level below 0.25", in_report=True),),
    tiny=f"{__name__}:build_level",
)
LIAR = replace(OFFSET, name="toy_liar", result_fields=(*OFFSET.result_fields, ResultField("extra", "float", "?")))
UNTINY = replace(LEVEL, name="toy_untiny", tiny=None)
ENTRIES = (OFFSET, LEVEL, LIAR, UNTINY)


@contextmanager
def registered() -> Iterator[tuple[MetricInfo, ...]]:
    """The toy entries in the registry for the duration (a plug-in would declare entry points)."""
    for info in ENTRIES:
        register_metric(info, replace=True)
    try:
        yield ENTRIES
    finally:
        for info in ENTRIES:
            unregister_metric(info.name)
