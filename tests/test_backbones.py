"""The two encoders read the features the reference uses, from the folder layouts the Hub serves."""

from __future__ import annotations

import pytest
import torch
from pickle_payload import CreatesAFile
from transformers import CLIPConfig, CLIPModel

from semantic_iqa.backbones import SemanticEncoder, StructureEncoder
from semantic_iqa.config import BackboneSpec


def test_structure_feature_is_the_cls_token_after_the_final_norm(tiny_model):
    encoder: StructureEncoder = tiny_model.structure
    seen = {}
    hook = encoder.model.norm.register_forward_hook(lambda _m, _i, out: seen.setdefault("normed", out))
    try:
        pixels = torch.rand(2, 3, 224, 224)
        feature = encoder(pixels)
    finally:
        hook.remove()
    assert feature.shape == (2, encoder.feature_dim)
    torch.testing.assert_close(feature, seen["normed"][:, 0])


def test_semantic_encoder_loads_a_full_clip_checkpoint_and_returns_the_pooled_output(tmp_path):
    """The openai/clip-vit-large-patch14-336 repo holds a whole CLIPModel (text tower too)."""
    torch.manual_seed(0)
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 56,
        "patch_size": 14,
        "projection_dim": 16,
    }
    text = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "vocab_size": 99,
        "projection_dim": 16,
    }
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    clip.save_pretrained(tmp_path / "clip")

    encoder = SemanticEncoder.from_folder(tmp_path / "clip")
    assert encoder.image_size == 56 and encoder.feature_dim == 32  # pooled width, not the projection's 16
    pixels = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        resized = torch.nn.functional.interpolate(pixels, size=(56, 56), mode="bilinear", align_corners=False)
        expected = clip.vision_model(pixel_values=resized).pooler_output
        torch.testing.assert_close(encoder(pixels), expected)


def test_encoders_stay_frozen_in_training_mode(tiny_model):
    tiny_model.train()
    try:
        assert not tiny_model.structure.training and not tiny_model.structure.model.training
        assert not tiny_model.semantic.model.training
        assert not any(p.requires_grad for p in tiny_model.structure.parameters())
        assert not any(p.requires_grad for p in tiny_model.semantic.parameters())
        assert tiny_model.heads.training
    finally:
        tiny_model.eval()


def test_clip_bin_without_safetensors_loads_with_the_safe_unpickler_only(tmp_path):
    """The reference CLIP repo has only pytorch_model.bin: loaded, but never by running its code."""
    from reference_repos import write_clip_repo

    from semantic_iqa.errors import WeightsFormatError

    folder = write_clip_repo(tmp_path / "clip")
    assert SemanticEncoder.from_folder(folder).feature_dim == 40  # the legacy full-CLIP layout loads

    marker = tmp_path / "code-ran"
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "payload": CreatesAFile(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(WeightsFormatError, match="objects other than tensors"):
        SemanticEncoder.from_spec(BackboneSpec("transformers", "clip", path="clip"), tmp_path)
    assert not marker.exists(), "the pickle's code ran"


def test_a_missing_vision_tensor_is_an_error_not_a_random_backbone(tmp_path):
    from reference_repos import write_clip_repo

    from semantic_iqa.errors import WeightsFormatError

    folder = write_clip_repo(tmp_path / "clip")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["vision_model.post_layernorm.weight"]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(WeightsFormatError, match="post_layernorm.weight"):
        SemanticEncoder.from_folder(folder)


def test_a_folder_without_weights_names_the_accepted_files(tmp_path):
    from semantic_iqa.errors import WeightsNotFoundError

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WeightsNotFoundError, match="model.safetensors, pytorch_model.bin"):
        SemanticEncoder.from_folder(tmp_path)
    with pytest.raises(WeightsNotFoundError, match=r"one of model.safetensors \(timm"):
        StructureEncoder.from_folder(tmp_path)
