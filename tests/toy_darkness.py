"""A lower-is-better toy metric for the job, report and Ray tests: nothing of it is a built-in's.

`toy_darkness` (NR): score = gain * (1 - mean pixel), in [0, 10], LOWER is better (a black
image scores 10, the worst). Per image it also declares a "floats" field (`channels`, spread
over `c_0..c_2`), a float shown in the report (`spread`) and a flagged bool (`black`, listed
in a section "Nearly black images"). `toy_undeclared` is the same metric whose records carry a
field its declaration does not list: every layer must refuse it with `MetricContractError`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

from semantic_iqa.contract import ResultField
from semantic_iqa.inputs import load_padded
from semantic_iqa.metric import Metric
from semantic_iqa.metric_output import MetricOutput
from semantic_iqa.registry import MetricInfo, register_metric, unregister_metric

BLACK_BELOW = 0.2  # mean pixel under which an image is flagged "black"


@dataclass(frozen=True)
class DarknessConfig:
    image_size: int = 16

    def backbone_specs(self) -> dict:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DarknessConfig:
        return cls(**raw)


@dataclass
class DarknessOutput(MetricOutput):
    score: torch.Tensor
    spread: torch.Tensor
    black: torch.Tensor
    channels: torch.Tensor


@dataclass
class UndeclaredOutput(DarknessOutput):
    secret: torch.Tensor | None = None


class Darkness(Metric):
    name = "toy_darkness"
    config_class = DarknessConfig
    encoder_classes: dict = {}

    def __init__(self, config: DarknessConfig) -> None:
        super().__init__()
        self.config = config
        self.gain = nn.Parameter(torch.tensor(10.0))

    @classmethod
    def from_parts(cls, config, encoders, **options):
        return cls(config)

    def frozen_encoders(self):
        return {}

    def head_parts(self):
        return {"head": {"gain": self.gain.detach().clone()}}

    def load_head_parts(self, parts):
        with torch.no_grad():
            self.gain.copy_(parts[0]["gain"])

    def model_card(self):
        return "# toy darkness\n"

    def image_transform(self):
        return functools.partial(load_padded, size=self.config.image_size)

    def output(self, images: torch.Tensor) -> DarknessOutput:
        means = images.mean(dim=(1, 2, 3))
        return DarknessOutput(
            score=self.gain * (1 - means),
            spread=images.std(dim=(1, 2, 3)),
            black=means < BLACK_BELOW,
            channels=images.mean(dim=(2, 3)),
        )

    def score_batch(self, images, extras, *, reference_cache=None, **options):
        return self.output(images["image"])

    def differentiable_score(self, images, extras=None, *, reference_cache=None, checkpoint_activations=False):
        return self.output(images["image"]).score


class Undeclared(Darkness):
    name = "toy_undeclared"

    def score_batch(self, images, extras, *, reference_cache=None, **options):
        output = self.output(images["image"])
        return UndeclaredOutput(**vars(output), secret=output.score * 0)


FIELDS = (
    ResultField("channels", "floats", "mean of each colour channel, in [0, 1]", column_prefix="c"),
    ResultField("spread", "float", "standard deviation of the pixels", in_report=True),
    ResultField(
        "black", "bool", "mean pixel under 0.2", in_report=True, flag="Nearly black images", states=("no", "BLACK")
    ),
)
DARKNESS = MetricInfo(
    name="toy_darkness",
    title="Toy darkness",
    kind="NR",
    higher_is_better=False,
    score_range=(0.0, 10.0),
    summary="how dark an image is; lower is better",
    target=f"{__name__}:Darkness",
    inputs=("image",),
    result_fields=FIELDS,
)
UNDECLARED = replace(DARKNESS, name="toy_undeclared", target=f"{__name__}:Undeclared")
LEVELS = {"lvl010": 10, "lvl040": 40, "lvl120": 120, "lvl200": 200, "lvl250": 250}  # grey level of each image


def expected_score(level: int) -> float:
    return 10.0 * (1 - level / 255)


@pytest.fixture
def toy_metrics() -> Iterator[None]:
    """Both toys registered for one test (as a plug-in's entry point would register them)."""
    for info in (DARKNESS, UNDECLARED):
        register_metric(info, replace=True)
    yield
    for info in (DARKNESS, UNDECLARED):
        unregister_metric(info.name)


def grey_folder(root: Path) -> Path:
    """Square grey images (no padding, so the mean is the level) and one undecodable file."""
    root.mkdir(parents=True, exist_ok=True)
    for name, level in LEVELS.items():
        Image.new("RGB", (24, 24), (level, level, level)).save(root / f"{name}.png")
    (root / "broken.png").write_bytes(b"not a png")
    return root


def save_toy(cls: type[Darkness], folder: Path) -> Path:
    return cls(DarknessConfig()).save_pretrained(folder)
