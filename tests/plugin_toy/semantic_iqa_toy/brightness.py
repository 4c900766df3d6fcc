"""toy_brightness: how bright an image is, through a learned sigmoid (NR, higher is better, in [0, 1])."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from semantic_iqa.inputs import load_padded, load_padded_batch
from semantic_iqa.metric import Metric
from semantic_iqa.metric_output import MetricOutput

from .common import ToyConfig, model_card

DARK_LEVEL = 0.25  # mean level below which an image is `dark`


@dataclass
class BrightnessOutput(MetricOutput):
    """`score` [B], then the declared result field `dark` [B] (bool)."""

    dark: torch.Tensor


class Brightness(Metric):
    """score = sigmoid(gain * (mean level - 0.5) + bias), the mean over the resize-padded square."""

    name = "toy_brightness"
    config_class = ToyConfig
    encoder_classes: dict = {}

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.gain = nn.Parameter(torch.tensor(8.0))  # the trained parts
        self.bias = nn.Parameter(torch.tensor(0.0))

    @classmethod
    def from_parts(cls, config: ToyConfig, encoders: dict) -> Brightness:
        return cls(config)

    def frozen_encoders(self) -> dict:
        return {}

    def head_parts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"head": {"gain": self.gain.detach().clone(), "bias": self.bias.detach().clone()}}

    def load_head_parts(self, parts: list[dict[str, torch.Tensor]]) -> None:
        with torch.no_grad():
            self.gain.copy_(parts[0]["gain"])
            self.bias.copy_(parts[0]["bias"])

    def model_card(self) -> str:
        return model_card("Toy brightness", "How bright an image is; higher is better, in [0, 1].")

    def image_transform(self) -> Callable:
        return functools.partial(load_padded, size=self.config.image_size)

    def score_batch(self, images, extras, *, reference_cache=None) -> BrightnessOutput:
        level = images["image"].mean(dim=(1, 2, 3))
        return BrightnessOutput(score=self._score(level), dark=level < DARK_LEVEL)

    def differentiable_score(
        self, images, extras=None, *, reference_cache=None, checkpoint_activations=False
    ) -> torch.Tensor:
        level = load_padded_batch(images["image"], self.config.image_size).mean(dim=(1, 2, 3))
        return self._score(level)

    def _score(self, level: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gain * (level - 0.5) + self.bias)


def build_tiny(seed: int = 0) -> Brightness:
    """A toy_brightness model with a random gain in [4, 12] and bias (the registry entry's `tiny` builder)."""
    generator = torch.Generator().manual_seed(seed)
    model = Brightness(ToyConfig())
    with torch.no_grad():
        model.gain.fill_(4 + 8 * torch.rand((), generator=generator).item())
        model.bias.fill_(0.5 * torch.randn((), generator=generator).item())
    return model.eval()
