"""MST-CLIPIQA's module against an independent float64 computation (tests/mst_reference.py)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from mst_reference import (
    authors_names,
    cross_attention_head,
    fuse,
    image_features,
    prompt_states,
    reference_scores,
    template_head,
)
from PIL import Image
from safetensors.torch import load_file, save_file

from semantic_iqa.errors import InvalidInputError, InvalidOptionError, WeightsFormatError
from semantic_iqa.metrics.mst_clipiqa.config import MSTCLIPIQAConfig
from semantic_iqa.metrics.mst_clipiqa.layers import (
    GatedFeatureFusion,
    PromptCrossAttentionHead,
    TemplateQualityHead,
)
from semantic_iqa.metrics.mst_clipiqa.preprocess import (
    load_short_side_center_cropped,
    resize_short_side_center_crop_tensor,
)
from semantic_iqa.metrics.mst_clipiqa.tiny import build_random_mst_clipiqa

PROMPTS = [
    "a cat",
    "a photo of a dog on a beach at sunset, highly detailed, 8k, trending on artstation",
    "abstract art",
    "Portrait of an old man, oil painting",
]


@pytest.fixture(scope="module")
def model_a():
    return build_random_mst_clipiqa("A", "tiny", seed=0)


@pytest.fixture(scope="module")
def model_b():
    return build_random_mst_clipiqa("B", "tiny", seed=0)


@pytest.fixture(scope="module")
def pixels(photo):
    rng = np.random.default_rng(1)
    images = [photo.crop((10, 20, 250, 200)), photo.rotate(90).crop((0, 0, 256, 180))]
    images += [
        Image.fromarray(rng.integers(0, 256, (240, 300, 3), dtype=np.uint8)),
        Image.new("RGB", (300, 224), "teal"),
    ]
    return torch.stack([load_short_side_center_cropped(image) for image in images])


def _towers(model):
    return {role: encoder.model for role, encoder in model.encoders.items()}


def _float64(model):
    # The whole model in float64, so it can be held to the float64 reference at 1e-9: any
    # difference left is a difference in the computation, not float32 round-off.
    return copy.deepcopy(model).double()


def test_trainable_parameter_counts_at_the_reference_sizes():
    fusion = GatedFeatureFusion(512, 128)
    count = lambda *modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    assert count(fusion, TemplateQualityHead(512)) == 722_561  # the reference's number for variant A
    assert count(fusion, PromptCrossAttentionHead(512, 8)) == 2_299_010


def test_only_fusion_and_head_train(model_a, model_b):
    for model in (model_a, model_b):
        assert model.num_trainable_parameters() == sum(p.numel() for p in model.fusion.parameters()) + sum(
            p.numel() for p in model.head.parameters()
        )
        assert not any(p.requires_grad for p in model.encoders.parameters())
    assert set(model_a.encoders) == {"coarse", "fine"} and set(model_b.encoders) == {"coarse", "fine", "text"}


def test_variant_a_matches_the_independent_computation(model_a, pixels):
    model = _float64(model_a)
    tensors = authors_names(model.head_tensors())
    z, gate = fuse(*image_features(_towers(model), pixels), tensors)
    expected, probabilities = template_head(z, tensors)
    with torch.no_grad():
        out = model(pixels.double())
        out32 = model_a(pixels)
    torch.testing.assert_close(out.score, expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(out.probabilities, probabilities, rtol=0, atol=1e-9)
    torch.testing.assert_close(out.gate_mean, gate.mean(dim=-1), rtol=0, atol=1e-9)
    torch.testing.assert_close(out32.score.double(), expected, rtol=1e-4, atol=1e-5)  # float32 round-off only
    assert ((out.score >= 1) & (out.score <= 5)).all()
    assert out.score.max() - out.score.min() > 1.0, "the tiny model must spread scores"
    assert probabilities.max() < 0.999, "probabilities must not all be one-hot, or the softmax goes untested"


def test_variant_a_template_features_are_the_unit_text_embeddings_of_the_five_templates(model_a):
    assert model_a.config.templates[0] == "a photo with bad quality"
    assert model_a.config.templates[-1] == "a photo with perfect quality"
    features = model_a.head.text_features
    assert features.shape == (5, 64)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(5))
    assert (features @ features.T - torch.eye(5)).abs().max() > 0.01  # five different templates


def test_variant_b_matches_the_independent_computation_in_a_mixed_batch(model_b, pixels):
    model = _float64(model_b)
    tensors = authors_names(model.head_tensors())
    expected = reference_scores(tensors, _towers(model), pixels, PROMPTS)
    with torch.no_grad():
        out = model(pixels.double(), PROMPTS)
        out32 = model_b(pixels, PROMPTS)
    torch.testing.assert_close(out.score, expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(out32.score.double(), expected, rtol=1e-4, atol=1e-5)  # float32 round-off only
    assert out.probabilities is None
    assert out.score.std() > 0.3, "the tiny model must spread scores"


def test_variant_b_score_does_not_depend_on_the_other_prompts_of_the_batch(model_b, pixels):
    image = pixels[:1]
    with torch.no_grad():
        alone = model_b(image, ["a cat"]).score
        beside_long = model_b(image.expand(2, -1, -1, -1), ["a cat", PROMPTS[1] * 2]).score
        other_prompt = model_b(image, [PROMPTS[3]]).score
    torch.testing.assert_close(beside_long[0], alone[0], rtol=0, atol=1e-5)
    assert (other_prompt - alone).abs() > 0.05, "the prompt must matter, or this test proves nothing"

    # The reference (no key padding mask) would attend to the padding too: its score moves.
    from semantic_iqa.metrics.mst_clipiqa.text import tokenize_prompts

    text = model_b.encoders["text"]
    ids, mask = tokenize_prompts(text.tokenizer, ["a cat", PROMPTS[1] * 2])
    with torch.no_grad():
        padded_states = text.model(input_ids=ids, attention_mask=mask).last_hidden_state[0]
    tensors = authors_names(model_b.head_tensors())
    z, _ = fuse(*image_features(_towers(model_b), image), tensors)
    unmasked = cross_attention_head(z, [padded_states], tensors, heads=8)
    masked = cross_attention_head(z, [prompt_states(text.model, "a cat")], tensors, heads=8)
    torch.testing.assert_close(masked, alone.double(), rtol=0, atol=1e-5)
    assert (unmasked - masked).abs() > 1e-3, "without the mask, padding would change the score"


def test_a_prompt_over_77_tokens_is_truncated_with_one_warning(model_b, pixels):
    long_prompt = " ".join(["castle"] * 100)
    with pytest.warns(UserWarning, match="1 of 2 prompt") as caught:
        with torch.no_grad():
            model_b(pixels[:2], [long_prompt, "a cat"])
    assert len(caught) == 1


@pytest.mark.parametrize(
    "prompts,match",
    [
        (None, "needs the generation prompt"),
        ("a cat", "list of 1 strings"),
        (["a", "b"], "got 2 prompts for 1 images"),
        ([3], r"prompts\[0\] is 3 \(int\), not a string"),
        ([None], r"prompts\[0\] is None \(NoneType\), not a string"),
    ],
)
def test_variant_b_refuses_missing_or_malformed_prompts(model_b, pixels, prompts, match):
    with pytest.raises(InvalidInputError, match=match):
        model_b(pixels[:1], prompts)


def test_bad_pixels_and_prompts_for_variant_a_are_typed_errors(model_a, pixels):
    with pytest.raises(InvalidInputError, match="takes no prompts"):
        model_a(pixels[:1], ["a cat"])
    with pytest.raises(InvalidInputError, match=r"\[B, 3, 224, 224\]"):
        model_a.score_pixels(torch.rand(1, 3, 200, 224))  # preprocessed pixels must be the crop
    # The module call takes any size and resizes/crops differentiably, as the PIL path does.
    odd = torch.rand(2, 3, 200, 300)
    with torch.no_grad():
        torch.testing.assert_close(
            model_a(odd).score, model_a.score_pixels(resize_short_side_center_crop_tensor(odd, 224)).score
        )
    with pytest.raises(InvalidInputError, match=r"in \[0, 1\]"):
        model_a(pixels[:1] * 255)
    with pytest.raises(InvalidInputError, match="float tensor"):
        model_a((pixels[:1] * 255).to(torch.uint8))


def test_output_records(model_a, pixels):
    with torch.no_grad():
        records = model_a(pixels[:2]).to_records()
    assert len(records) == 2 and set(records[0]) == {"score", "gate_mean", "probabilities"}
    assert abs(sum(records[0]["probabilities"]) - 1) < 1e-5
    json.dumps(records)


def test_random_models_are_deterministic_per_seed(model_a, pixels):
    again, other = build_random_mst_clipiqa("A", "tiny", seed=0), build_random_mst_clipiqa("A", "tiny", seed=1)
    with torch.no_grad():
        torch.testing.assert_close(again(pixels).score, model_a(pixels).score, rtol=0, atol=0)
        assert (other(pixels).score - model_a(pixels).score).abs().max() > 0.1


@pytest.mark.parametrize("variant", ["A", "B"])
def test_head_tensors_round_trip_through_safetensors(tmp_path, variant, pixels):
    source = build_random_mst_clipiqa(variant, "tiny", seed=0)
    target = build_random_mst_clipiqa(variant, "tiny", seed=0)
    with torch.no_grad():
        for p in target.fusion.parameters():
            p.add_(1.0)
    save_file({k: v.contiguous() for k, v in source.head_tensors().items()}, str(tmp_path / "head.safetensors"))
    target.load_head_tensors(load_file(str(tmp_path / "head.safetensors")))
    prompts = PROMPTS if variant == "B" else None
    with torch.no_grad():
        torch.testing.assert_close(target(pixels, prompts).score, source(pixels, prompts).score, rtol=0, atol=0)
    names = set(source.head_tensors())
    assert {"fusion.W_h.weight", "fusion.W_f.bias"} <= names
    assert ({"head.temperature", "head.text_features", "head.quality_scores"} <= names) == (variant == "A")
    assert ({"head.alpha", "head.cross_attn.in_proj_weight", "head.w_o.bias"} <= names) == (variant == "B")


def test_load_head_tensors_is_strict(model_a):
    good = model_a.head_tensors()
    for broken, match in [
        ({k: v for k, v in good.items() if k != "head.temperature"}, r"missing \['head.temperature'\]"),
        ({**good, "head.extra": torch.zeros(1)}, r"unexpected \['head.extra'\]"),
        ({**good, "fusion.W_c.bias": torch.zeros(3)}, r"fusion.W_c.bias \(3,\)"),
        ({**good, "head.quality_scores": torch.arange(5.0)}, "quality_scores must be"),
    ]:
        with pytest.raises(WeightsFormatError, match=match):
            model_a.load_head_tensors(broken)


def test_config_round_trips_through_json_and_refuses_unknown_or_missing_fields(model_b):
    raw = json.loads(json.dumps(model_b.config.to_dict()))
    assert raw["variant"] == "B" and raw["quality_words"][0] == "bad" and "format" not in raw
    assert MSTCLIPIQAConfig.from_dict(raw) == model_b.config
    with pytest.raises(WeightsFormatError, match="unknown MSTCLIPIQAConfig entries: colour"):
        MSTCLIPIQAConfig.from_dict({**raw, "colour": 1})
    with pytest.raises(WeightsFormatError, match="lacks the MSTCLIPIQAConfig entries: num_heads"):
        MSTCLIPIQAConfig.from_dict({k: v for k, v in raw.items() if k != "num_heads"})
    with pytest.raises(WeightsFormatError, match="variant"):
        MSTCLIPIQAConfig.from_dict({**raw, "variant": "C"})
    with pytest.raises(WeightsFormatError, match="unknown MSTCLIPIQAConfig entries: format"):
        MSTCLIPIQAConfig.from_dict({**raw, "format": "semantic-iqa/dss-sqa"})  # the envelope is not a setting
    with pytest.raises(InvalidOptionError, match="variant"):
        MSTCLIPIQAConfig(variant="C")
    reference = MSTCLIPIQAConfig()
    assert (reference.embed_dim, reference.hidden_dim, reference.num_heads, reference.max_prompt_tokens) == (
        512,
        128,
        8,
        77,
    )
    assert reference.coarse.repo_id == "openai/clip-vit-base-patch32" and reference.fine.repo_id.endswith("patch16")


def test_gradients_reach_the_head_and_the_pixels(model_b, pixels):
    images = pixels[:2].clone().requires_grad_(True)
    model_b.head.alpha.grad = None
    model_b(images, PROMPTS[:2]).score.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert model_b.head.alpha.grad is not None
    model_b.zero_grad(set_to_none=True)
