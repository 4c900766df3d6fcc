"""The seam: a metric is one class (one folder) plus one registry line, and the shared parts
(weights I/O with sha256 checks, the Hub, the scoring loop, `create_metric`) just work for it.

The third metric here is defined in this test: a no-reference "brightness" score with one
trained scalar pair and no backbone, registered with one `register_metric` line.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

import semantic_iqa
from semantic_iqa import Metric, MetricInfo, create_metric, list_metrics, register_metric
from semantic_iqa.errors import InvalidOptionError, NoPublishedWeightsError, WeightsIntegrityError
from semantic_iqa.inputs import load_padded
from semantic_iqa.metric import image_columns
from semantic_iqa.registry import unregister_metric


@dataclass(frozen=True)
class BrightnessConfig:
    image_size: int = 32

    def backbone_specs(self) -> dict:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BrightnessConfig:
        return cls(**raw)


class Brightness(Metric):
    """score = 1 + 4 * sigmoid(scale * (mean pixel - 0.5) + shift): NR, in [1, 5], higher = brighter."""

    name = "toy_brightness"
    config_class = BrightnessConfig
    encoder_classes: dict = {}

    def __init__(self, config: BrightnessConfig) -> None:
        super().__init__()
        self.config = config
        self.scale = nn.Parameter(torch.tensor(8.0))
        self.shift = nn.Parameter(torch.tensor(0.0))

    @classmethod
    def from_parts(cls, config, encoders):
        return cls(config)

    def frozen_encoders(self):
        return {}

    def head_parts(self):
        return {"head": {"scale": self.scale.detach().clone(), "shift": self.shift.detach().clone()}}

    def load_head_parts(self, parts):
        with torch.no_grad():
            self.scale.copy_(parts[0]["scale"])
            self.shift.copy_(parts[0]["shift"])

    def image_transform(self):
        return functools.partial(load_padded, size=self.config.image_size)

    def score_batch(self, images, extras):
        means = images["image"].mean(dim=(1, 2, 3))
        return 1 + 4 * torch.sigmoid(self.scale * (means - 0.5) + self.shift)

    def differentiable_score(self, images, extras=None, **options):
        means = images["image"].mean(dim=(1, 2, 3))
        return 1 + 4 * torch.sigmoid(self.scale * (means - 0.5) + self.shift)

    def model_card(self):
        return "# toy brightness\n"

    def predict(self, images, *, batch_size: int = 16):
        columns = image_columns(("image",), (images,))
        return torch.cat(self.predict_columns(columns, batch_size=batch_size))


TOY = MetricInfo(
    name="toy_brightness",
    title="Toy brightness",
    kind="NR",
    higher_is_better=True,
    score_range=(1.0, 5.0),
    summary="mean brightness, for the registry test",
    target=f"{__name__}:Brightness",
    no_weights_help="train it yourself",
    inputs=("image",),
)


@pytest.fixture
def toy_registered():
    register_metric(TOY)  # the one registry line
    yield TOY
    unregister_metric(TOY.name)


def grey(level: int) -> Image.Image:
    return Image.new("RGB", (40, 24), (level, level, level))


def test_a_third_metric_is_one_class_and_one_registry_line(toy_registered, tmp_path):
    assert [m.name for m in list_metrics()][-1] == "toy_brightness"
    trained = Brightness(BrightnessConfig())
    with torch.no_grad():
        trained.shift.fill_(0.75)
    folder = trained.save_pretrained(tmp_path / "toy")

    config = json.loads((folder / "config.json").read_text())
    assert (config["format"], config["metric"], config["image_size"]) == ("semantic-iqa", "toy_brightness", 32)
    assert [e["file"] for e in config["head_files"]] == ["heads/head.safetensors"]

    metric = create_metric("toy_brightness", weights=folder, device="cpu")
    assert isinstance(metric, Brightness) and metric.info.kind == "NR" and metric.info.higher_is_better
    assert metric.shift.item() == 0.75  # the trained tensors came back
    # Through the shared loop: paths, PIL images, batches of 3 over 5 images, in order.
    for level, image in zip((0, 60, 120), (grey(0), grey(60), grey(120)), strict=True):
        image.save(tmp_path / f"{level}.png")
    images = [tmp_path / "0.png", grey(250), tmp_path / "60.png", tmp_path / "120.png", grey(200)]
    scores = metric.predict(images, batch_size=3)
    # load_padded scales 40x24 to 32x19 and pads it to 32x32 with black: 19/32 of the pixels hold the level.
    expected = [
        1 + 4 * torch.sigmoid(torch.tensor(8.0 * (lv / 255 * 19 / 32 - 0.5) + 0.75)) for lv in (0, 250, 60, 120, 200)
    ]
    torch.testing.assert_close(scores, torch.stack(expected), atol=1e-5, rtol=0)


def test_the_shared_weights_checks_apply_to_the_new_metric(toy_registered, tmp_path):
    folder = Brightness(BrightnessConfig()).save_pretrained(tmp_path / "toy")
    path = folder / "heads" / "head.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one bit pattern of one tensor changed
    with pytest.raises(WeightsIntegrityError, match="head.safetensors"):
        create_metric("toy_brightness", weights=folder, device="cpu")
    with pytest.raises(NoPublishedWeightsError, match="no published Toy brightness weights.*train it yourself"):
        create_metric("toy_brightness", device="cpu")


def test_a_folder_of_another_metric_is_refused(toy_registered, tiny_dir):
    with pytest.raises(semantic_iqa.WeightsFormatError, match="holds 'dss_sqa' weights, not 'toy_brightness'"):
        create_metric("toy_brightness", weights=tiny_dir, device="cpu")


def test_registry_entries_and_errors():
    entry = {m.name: m for m in list_metrics()}["dss_sqa"]
    assert (entry.kind, entry.higher_is_better, entry.score_range) == ("FR", True, (0.0, 5.0))
    with pytest.raises(InvalidOptionError, match="unknown metric 'nope'; choose one of dss_sqa"):
        create_metric("nope")
    with pytest.raises(InvalidOptionError, match="already registered"):
        register_metric(entry)


def test_create_metric_gives_the_dss_sqa_model(tiny_dir, tiny_model, photo):
    metric = create_metric("dss_sqa", weights=tiny_dir, device="cpu")
    assert isinstance(metric, semantic_iqa.DSSSQA)
    dist = photo.rotate(90)
    assert metric.predict(photo, dist).score.item() == pytest.approx(
        tiny_model.predict(photo, dist).score.item(), abs=1e-6
    )
