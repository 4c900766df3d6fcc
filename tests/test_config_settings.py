"""Every metric's config.json is parsed one way (`config_fields.Settings`), and every model card is a ModelCard.

The settings of a weights folder are declared as data (a `Settings` of `Field`s per config
class, nested for sections and backbones); the one parser gives the same typed errors in
the same words for every metric, and a plug-in's config gets them by declaring its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from semantic_iqa.config import BACKBONE, BackboneSpec
from semantic_iqa.config_fields import FEATURE_DIM, Integer, Items, Number, Settings, Text
from semantic_iqa.errors import MetricContractError, WeightsConfigError, WeightsFormatError
from semantic_iqa.metrics.dss_sqa.card import model_card as dss_card
from semantic_iqa.metrics.dss_sqa.config import REFERENCE_CONFIG, DSSSQAConfig
from semantic_iqa.metrics.dss_sqa.config import SETTINGS as DSS_SETTINGS
from semantic_iqa.metrics.mst_clipiqa.card import model_card as mst_card
from semantic_iqa.metrics.mst_clipiqa.config import SETTINGS as MST_SETTINGS
from semantic_iqa.metrics.mst_clipiqa.config import MSTCLIPIQAConfig

DSS_RAW = json.loads(json.dumps(REFERENCE_CONFIG.to_dict()))
MST_RAW = json.loads(json.dumps(MSTCLIPIQAConfig().to_dict()))
CONFIGS = {"dss_sqa": (DSSSQAConfig, DSS_RAW), "mst_clipiqa": (MSTCLIPIQAConfig, MST_RAW)}


# -- one parser for both metrics -------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings,cls,roles",
    [
        (DSS_SETTINGS, DSSSQAConfig, ["structure", "semantic"]),
        (MST_SETTINGS, MSTCLIPIQAConfig, ["coarse", "fine", "text"]),
    ],
)
def test_each_metric_declares_every_setting_as_data(settings, cls, roles):
    assert isinstance(settings, Settings) and settings.cls is cls
    assert set(settings.fields) == {f.name for f in fields(cls)}  # no setting reaches the model unchecked
    assert [name for name, spec in settings.fields.items() if spec is BACKBONE] == roles


@pytest.mark.parametrize("metric", list(CONFIGS))
def test_a_config_round_trips_through_the_one_parser(metric):
    cls, raw = CONFIGS[metric]
    assert cls.from_dict(raw) == cls.from_dict(json.loads(json.dumps(cls.from_dict(raw).to_dict())))


@pytest.mark.parametrize("metric", list(CONFIGS))
@pytest.mark.parametrize("raw", [[1, 2], "settings", None])
def test_settings_that_are_not_an_object_are_one_typed_error_for_every_metric(metric, raw):
    # Before: MST-CLIPIQA raised a bare WeightsFormatError, DSS-SQA a TypeError from dict().
    cls, _ = CONFIGS[metric]
    with pytest.raises(WeightsConfigError) as caught:
        cls.from_dict(raw)
    assert caught.value.field == "the settings" and "a JSON object of" in caught.value.expected


@pytest.mark.parametrize("metric", list(CONFIGS))
def test_an_unknown_entry_is_refused_in_the_same_words_for_every_metric(metric):
    cls, raw = CONFIGS[metric]
    with pytest.raises(WeightsFormatError) as caught:
        cls.from_dict({**raw, "colour": 1})
    assert str(caught.value) == f"config.json has unknown {cls.__name__} entries: colour"


def test_an_unknown_entry_of_a_section_names_the_section():
    raw = {**DSS_RAW, "head": {**DSS_RAW["head"], "width": 3}}
    with pytest.raises(WeightsFormatError, match=r"unknown HeadConfig entries \(in head\): width"):
        DSSSQAConfig.from_dict(raw)


@pytest.mark.parametrize("metric,role", [("dss_sqa", "semantic"), ("mst_clipiqa", "fine")])
def test_a_backbone_without_a_name_is_refused_naming_the_backbone(metric, role):
    cls, raw = CONFIGS[metric]
    backbone = {k: v for k, v in raw[role].items() if k != "name"}
    with pytest.raises(WeightsFormatError) as caught:
        cls.from_dict({**raw, role: backbone})
    message = str(caught.value)
    assert message.startswith(f"config.json lacks a required entry (in {role}): ") and "'name'" in message


@pytest.mark.parametrize("metric,name", [("dss_sqa", "semantic.repo_id"), ("mst_clipiqa", "text.revision")])
def test_a_wrong_backbone_value_is_named_with_its_backbone(metric, name):
    cls, raw = CONFIGS[metric]
    role, key = name.split(".")
    with pytest.raises(WeightsConfigError) as caught:
        cls.from_dict({**raw, role: {**raw[role], key: 5}})
    assert caught.value.field == name and caught.value.value == 5


def test_tolerant_and_strict_settings_differ_only_in_absent_entries():
    # DSS-SQA's format leaves settings with defaults out; MST-CLIPIQA's to_dict writes them all.
    dss = {k: v for k, v in DSS_RAW.items() if k not in ("head", "num_folds")}
    assert DSSSQAConfig.from_dict(dss) == REFERENCE_CONFIG
    with pytest.raises(WeightsFormatError, match="lacks the MSTCLIPIQAConfig entries: hidden_dim, num_heads"):
        MSTCLIPIQAConfig.from_dict({k: v for k, v in MST_RAW.items() if k not in ("hidden_dim", "num_heads")})


# -- a plug-in's config declares its settings the same way ----------------------------------------


@dataclass(frozen=True)
class ToyPreprocess:
    size: int = 32
    gains: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class ToyConfig:
    encoder: BackboneSpec
    width: int = 16
    label: str = "toy"
    preprocess: ToyPreprocess = field(default_factory=ToyPreprocess)


TOY = Settings(
    ToyConfig,
    {
        "encoder": BACKBONE,
        "width": FEATURE_DIM,
        "label": Text(max_length=8),
        "preprocess": Settings(ToyPreprocess, {"size": Integer(8, 64), "gains": Items(Number(0.0, 2.0), 2, 2)}),
    },
)
TOY_RAW = {"encoder": {"library": "timm", "name": "toy", "path": "encoder"}, "preprocess": {"gains": [0.5, 1.5]}}


def test_a_plugin_config_gets_the_same_checks_and_errors():
    config = TOY.load(TOY_RAW)
    assert config == ToyConfig(BackboneSpec("timm", "toy", path="encoder"), preprocess=ToyPreprocess(gains=(0.5, 1.5)))
    with pytest.raises(WeightsConfigError) as caught:
        TOY.load({**TOY_RAW, "preprocess": {"size": 100}})
    assert caught.value.field == "preprocess.size" and "an integer from 8 to 64" in str(caught.value)
    with pytest.raises(WeightsConfigError) as caught:
        TOY.load({**TOY_RAW, "encoder": {"library": "timm", "name": "toy", "repo_id": "org/toy"}})
    assert caught.value.field == "encoder.revision"  # a Hub backbone must be pinned, for plug-ins too


def test_settings_that_miss_a_field_of_the_config_class_are_a_contract_error():
    with pytest.raises(MetricContractError, match=r"ToyConfig.*\['encoder', 'label', 'preprocess', 'width'\]"):
        Settings(ToyConfig, {"encoder": BACKBONE, "width": FEATURE_DIM})


# -- model cards ------------------------------------------------------------------------------------


def _card(text: str) -> ModelCard:
    card = ModelCard(text)
    assert card.data.library_name == "semantic-iqa" and card.data.license == "other"
    assert "image-quality-assessment" in card.data.tags
    return card


def test_the_tiny_dss_sqa_card_is_a_model_card_that_says_its_backbones_are_random(tiny_dir: Path):
    card = _card((tiny_dir / "README.md").read_text())
    assert "full-reference-iqa" in card.data.tags
    assert "**Random weights**: the structure and semantic backbones" in card.text
    assert "scores mean nothing" in card.text


def test_a_card_of_hub_backbones_does_not_say_random():
    for text in (dss_card(REFERENCE_CONFIG), mst_card(MSTCLIPIQAConfig())):
        card = _card(text)
        assert "Random weights" not in card.text and "## Citation" in card.text


def test_the_mst_clipiqa_card_names_its_random_towers():
    config = MSTCLIPIQAConfig(
        variant="B",
        coarse=BackboneSpec("transformers", "CLIPVisionModelWithProjection (tiny, random)", path="coarse"),
    )
    card = _card(mst_card(config))
    assert "no-reference-iqa" in card.data.tags
    assert "**Random weights**: the coarse backbone of this folder" in card.text
    assert 'create_metric("mst_clipiqa_prompt"' in card.text and "(variant B)" in card.text
