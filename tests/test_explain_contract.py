"""explain knows no metric: a probe metric registered at run time is explained through its contract alone.

The probe has nothing of the built-ins: its own input names ("original", "edited"), result
fields, an option whose default rounds the score to tenths (flat: no gradient) with another
value declared for gradients, a reference cache, a working size. Before explain went through
the contract, it read DSS-SQA's config and encoder, and MST-CLIPIQA's `forward`, and failed
on such a metric.
"""

from __future__ import annotations

import functools
import json
import pickle
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from semantic_iqa.contract import MetricOption, ResultField
from semantic_iqa.errors import InvalidInputError, MetricContractError, UnknownOptionError
from semantic_iqa.explanation import explain
from semantic_iqa.explanation.attribution import grid_cells
from semantic_iqa.inputs import load_padded, load_padded_batch
from semantic_iqa.metric import Metric
from semantic_iqa.metric_output import MetricOutput
from semantic_iqa.preprocess import resized_size
from semantic_iqa.reference_cache import ReferenceCache
from semantic_iqa.registry import MetricInfo, metric_info, register_metric, unregister_metric

SIZE = 32  # the probe's input square
HEIGHT, WIDTH = 48, 72  # larger than SIZE: the probe sees 32 x 21
CHANGED = (slice(0, HEIGHT // 2), slice(WIDTH // 2, WIDTH))  # top right


@dataclass
class ProbeOutput(MetricOutput):
    gap: torch.Tensor
    changed: torch.Tensor


class Probe(Metric):
    """score = 1 - weight * mean |edited - original| (full reference) or |image - its mean| (no reference),
    on the images resize-padded to SIZE; no reference: the weight is multiplied by the prompt's length."""

    name = "probe"
    config_class = dict
    encoder_classes: dict = {}

    def __init__(self, entry: str) -> None:
        super().__init__()
        self.entry = entry
        self.weight = nn.Parameter(torch.tensor(3.0))
        self.caches: list[ReferenceCache] = []

    @property
    def info(self) -> MetricInfo:
        return metric_info(self.entry)

    @classmethod
    def from_parts(cls, config, encoders, **options):
        raise NotImplementedError("the probe has no weights folder")

    def frozen_encoders(self):
        return {}

    def head_parts(self):
        return {"head": {"weight": self.weight.detach()}}

    def load_head_parts(self, parts):
        self.weight.data = parts[0]["weight"]

    def model_card(self) -> str:
        return "# probe\n"

    def image_transform(self):
        return functools.partial(load_padded, size=SIZE)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images  # the "features" of a reference: its padded pixels

    def make_reference_cache(self, max_items: int = 4096):
        if self.info.kind == "NR":
            return None
        self.caches.append(ReferenceCache(self, max_items))
        return self.caches[-1]

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        return resized_size(width, height, SIZE) if max(width, height) > SIZE else (width, height)

    def _output(self, images, extras, reference_cache, rounding) -> ProbeOutput:
        roles = [role for role in self.info.inputs if role != "prompt"]
        varied = load_padded_batch(images[roles[-1]], SIZE)
        if len(roles) == 2:
            original = load_padded_batch(images[roles[0]].detach(), SIZE)
            target = reference_cache.features(original) if reference_cache is not None else original
        else:
            target = varied.mean(dim=(2, 3), keepdim=True)
        gap = (varied - target).abs().mean(dim=(1, 2, 3))
        lengths = torch.tensor([float(len(text)) for text in (extras or {}).get("prompt", [])])
        weight = self.weight * lengths if len(lengths) else self.weight
        score = 1 - weight * gap
        if rounding == "tenths":
            score = torch.round(score * 10) / 10
        return ProbeOutput(score, gap, gap > 0.01)

    def score_batch(self, images, extras, *, reference_cache=None, rounding=None):
        return self._output(images, extras, reference_cache, rounding or "tenths")

    def differentiable_score(
        self, images, extras=None, *, reference_cache=None, checkpoint_activations=False, rounding=None
    ):
        return self._output(images, extras, reference_cache, rounding or "tenths").score


FIELDS = (
    ResultField("gap", "float", "mean absolute difference", in_report=True, label="mean gap"),
    ResultField("changed", "bool", "the images differ", in_report=True, label="edit", states=("none", "SEEN")),
)
ROUNDING = MetricOption(
    "rounding", str, choices=("tenths", "off"), default="tenths", help="round the score", for_gradients="off"
)
FR = MetricInfo(
    name="probe_fr",
    title="Probe",
    kind="FR",
    higher_is_better=True,
    score_range=(None, 1.0),
    summary="a probe of the explanation layer",
    target=f"{Probe.__module__}:Probe",
    inputs=("original", "edited"),
    scoring_options=(ROUNDING,),
    result_fields=FIELDS,
)
NR = replace(FR, name="probe_nr", kind="NR", inputs=("image", "prompt"))


@pytest.fixture
def probes():  # registered for each test only: other tests (and the command line) never see them
    for info in (FR, NR):
        register_metric(info, replace=True)
    yield Probe("probe_fr"), Probe("probe_nr")
    for info in (FR, NR):
        unregister_metric(info.name)


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    original = torch.rand(3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))
    edited = original.clone()
    edited[:, CHANGED[0], CHANGED[1]] = 1 - edited[:, CHANGED[0], CHANGED[1]]
    return original, edited


def probe_scores(model: Probe, original: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """The probe's unrounded scores of `original` against each of `edited` [B, 3, H, W], computed here."""
    with torch.no_grad():
        refs = original.expand(len(edited), -1, -1, -1)
        return model.differentiable_score({"original": refs, "edited": edited}, rounding="off")


def test_occlusion_of_a_run_time_metric_is_exact_to_its_score(probes, pair):
    model, _ = probes
    original, edited = pair
    result = explain(original, edited, metric="probe_fr", model=model, method="occlusion", grid=2, rounding="off")
    assert result.heat.shape == (HEIGHT, WIDTH) and result.settings["resolution"] == "32x21"
    cells = list(grid_cells(HEIGHT, WIDTH, 2))
    restored = edited.repeat(len(cells), 1, 1, 1)
    for index, (rows, cols) in enumerate(cells):
        restored[index, :, rows, cols] = original[:, rows, cols]
    gains = probe_scores(model, original, restored) - probe_scores(model, original, edited[None])
    for (rows, cols), gain in zip(cells, gains.tolist(), strict=True):
        assert result.heat[rows, cols].sum() == pytest.approx(gain, abs=1e-5)
    assert gains.abs().max() > 0.05  # the top-right cell: the check is not empty
    assert model.caches[-1].misses == 1 and model.caches[-1].hits > 1  # the reference encoded once


def test_the_reported_score_and_fields_are_the_metric_s_own(probes, pair):
    model, _ = probes
    original, edited = pair
    result = explain(original, edited, metric="probe_fr", model=model, method="occlusion", grid=2)
    predicted = model.predict(original, edited).to_records()[0]  # the scoring loop's record (rounding tenths)
    assert set(result.record()) == set(predicted) == {"score", "gap", "changed"}
    assert result.score == pytest.approx(predicted["score"]) and result.details["changed"] is predicted["changed"]
    assert result.gap == pytest.approx(predicted["gap"]) and result.changed is True
    assert result.settings["rounding"] == "tenths"  # the declared default, as scored
    caption = result.caption()
    assert "mean gap" in caption and "edit SEEN" in caption and "rounding tenths" in caption
    assert result.fold_std is None  # a field another metric declares
    with pytest.raises(AttributeError):
        _ = result.no_such_field
    assert pickle.loads(pickle.dumps(result)).gap == result.gap


def test_gradients_run_with_the_option_s_value_for_gradients(probes, pair):
    model, _ = probes
    original, edited = pair
    result = explain(original, edited, metric="probe_fr", model=model, method="gradients", steps=4)
    # Rounded to tenths, the score is flat: a zero map. The declared value for gradients ("off")
    # gives the map of the unrounded score, whose sum is the score lost (the probe is linear
    # along the path, up to the resize's clamping).
    same, changed = probe_scores(model, original, torch.stack([original, edited]))
    assert result.heat.sum() == pytest.approx(float(same - changed), rel=0.02)
    assert abs(float(same - changed)) > 0.05
    assert result.settings["rounding"] == "tenths" and result.settings["rounding for gradients"] == "off"
    assert "rounding tenths (off for the map)" in result.caption()
    outside = np.ones(result.heat.shape, dtype=bool)
    outside[CHANGED] = False
    assert not result.heat[outside].any()


def test_a_no_reference_metric_with_a_prompt(probes, pair):
    _, model = probes
    image = pair[1]
    result = explain(image, metric="probe_nr", model=model, grid=2, baseline="mean", prompt="abc", rounding="off")
    assert result.settings["resolution"] == "32x21" and result.reference is None
    assert result.score == pytest.approx(float(model.predict(image, prompts="abc", rounding="off").score[0]))
    assert result.heat.shape == (HEIGHT, WIDTH) and np.abs(result.heat).sum() > 0
    longer = explain(image, metric="probe_nr", model=model, grid=2, baseline="mean", prompt="abcdef", rounding="off")
    assert longer.heat.sum() == pytest.approx(2 * result.heat.sum(), rel=1e-4)  # the prompt reaches the metric
    with pytest.raises(InvalidInputError, match="prompt"):
        explain(image, metric="probe_nr", model=model)


def test_bad_options_and_records_are_typed_errors(probes, pair):
    model, _ = probes
    original, edited = pair
    with pytest.raises(UnknownOptionError, match="probe_fr has no option 'gate'.*option of dss_sqa"):
        explain(original, edited, metric="probe_fr", model=model, gate="hard")
    with pytest.raises(UnknownOptionError, match="no option 'sharpness'"):
        explain(original, edited, metric="probe_fr", model=model, sharpness=2)
    lying = register_metric(replace(FR, name="probe_lying", result_fields=FIELDS[:1]), replace=True)
    try:
        with pytest.raises(MetricContractError, match="undeclared field.*changed"):
            explain(original, edited, metric=lying.name, model=model, method="occlusion", grid=1)
    finally:
        unregister_metric(lying.name)


def test_the_command_s_json_is_the_record_score_json_gives(tiny_dir, tmp_path, capsys):
    from semantic_iqa.cli import main

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    paths = [tmp_path / "ref.png", tmp_path / "dist.png"]
    Image.fromarray(pixels).save(paths[0])
    Image.fromarray(255 - pixels).save(paths[1])
    weights = ["--weights", str(tiny_dir)]
    assert main(["score", *map(str, paths), *weights, "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    argv = ["explain", *map(str, paths), "--out", str(tmp_path / "map.png"), *weights]
    assert main([*argv, "--method", "occlusion", "--grid", "1", "--json"]) == 0
    explained = json.loads(capsys.readouterr().out)
    record_keys = set(scored) - {"metric", "ref", "dist"}
    assert record_keys == {"score", *(item.name for item in metric_info("dss_sqa").result_fields)}
    for key in record_keys:  # the same figures, as the metric's own decoding gives them
        assert explained[key] == pytest.approx(scored[key], abs=1e-5), key
