"""`make_tiny`: real timm/transformers classes, non-trivial statistics, reproducible from a seed."""

from __future__ import annotations

import torch
from timm.models.eva import Eva
from transformers import CLIPVisionModel

from semantic_iqa import DSSSQA
from semantic_iqa.metrics.dss_sqa.tiny import build_random_model, make_tiny


def test_tiny_model_uses_the_real_backbone_classes(tiny_model):
    assert isinstance(tiny_model.structure.model, Eva)  # timm's DINOv3 implementation
    assert isinstance(tiny_model.semantic.model, CLIPVisionModel)
    assert tiny_model.semantic.image_size == 336


def test_batchnorm_statistics_are_not_the_identity(tiny_model):
    heads = tiny_model.heads
    assert heads.norm_running_mean.abs().min() > 0
    assert not torch.allclose(heads.norm_running_var, torch.ones_like(heads.norm_running_var))
    assert not torch.equal(heads.norm_running_var[0], heads.norm_running_var[1])


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = DSSSQA.from_pretrained(make_tiny(tmp_path / "a", seed=3), device="cpu")
    b = DSSSQA.from_pretrained(make_tiny(tmp_path / "b", seed=3), device="cpu")
    # config.json records the sha256 of every file: equal configs mean byte-identical folders.
    assert (tmp_path / "a" / "config.json").read_text() == (tmp_path / "b" / "config.json").read_text()
    c = build_random_model("tiny", seed=4)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.heads.linear1_weight, c.heads.linear1_weight)
