"""On a CPU, image encoders split a batch into calls of at most `cpu_tokens_per_call` tokens."""

from __future__ import annotations

import pytest
import timm
import torch

from semantic_iqa.backbones import ImageEncoder, ProjectedCLIPEncoder, StructureEncoder, TimmOutputEncoder
from semantic_iqa.metrics.dreamsim.tiny import build_random_dreamsim
from semantic_iqa.metrics.dss_sqa.tiny import build_random_model
from semantic_iqa.metrics.mst_clipiqa import build_random_mst_clipiqa

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def encoders() -> dict[str, tuple[ImageEncoder, int]]:
    """Every image encoder class at tiny size, with its input side."""
    dss = build_random_model("tiny")
    mst = build_random_mst_clipiqa("A", "tiny", seed=0)
    dreamsim = build_random_dreamsim("ensemble", "tiny", seed=0)
    found = {f"dss_sqa.{name}": (encoder, 224) for name, encoder in dss.frozen_encoders().items()}
    found |= {f"mst_clipiqa.{name}": (encoder, 224) for name, encoder in mst.frozen_encoders().items()}
    found |= {f"dreamsim.{name}": (encoder, 224) for name, encoder in dreamsim.frozen_encoders().items()}
    return {name: pair for name, pair in found.items() if isinstance(pair[0], ImageEncoder)}


def test_every_metric_s_image_encoders_are_image_encoders() -> None:
    classes = {type(encoder).__name__ for encoder, _ in encoders().values()}
    assert {"StructureEncoder", "SemanticEncoder", "ProjectedCLIPEncoder", "TimmOutputEncoder"} <= classes


@pytest.mark.parametrize("name", sorted(encoders()))
def test_split_calls_give_the_rows_of_one_call_in_order(name: str, monkeypatch) -> None:
    encoder, side = encoders()[name]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # weights of a wide spread, so that every image gets its own feature
        for parameter in encoder.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    pixels = torch.randn(5, 3, side, side, generator=generator)
    whole = encoder(pixels)
    tokens = encoder.tokens_per_image(pixels)
    calls = []
    encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda chunk: calls.append(len(chunk)) or encode(chunk))
    monkeypatch.setattr(encoder, "cpu_tokens_per_call", 2 * tokens)  # two images per call
    split = encoder(pixels)
    assert calls == [2, 2, 1]
    torch.testing.assert_close(split, whole, atol=1e-5, rtol=1e-5)
    gaps = [(whole[i] - whole[j]).abs().max() for i in range(5) for j in range(i)]
    assert min(gaps) > 1e-3  # rows that differ: a mix-up of their order would show


def test_tokens_per_image_counts_patches_and_prefix_tokens() -> None:
    dss = build_random_model("tiny")
    structure, semantic = dss.structure, dss.semantic
    pixels = torch.zeros(1, 3, 224, 224)
    patch = structure.model.patch_embed.patch_size[0]
    assert structure.tokens_per_image(pixels) == (224 // patch) ** 2 + structure.model.num_prefix_tokens
    config = semantic.model.config
    assert semantic.tokens_per_image(pixels) == (config.image_size // config.patch_size) ** 2 + 1


def test_a_batch_within_the_budget_is_one_call(monkeypatch) -> None:
    encoder, side = encoders()["dss_sqa.semantic"]
    calls = []
    encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda chunk: calls.append(len(chunk)) or encode(chunk))
    pixels = torch.randn(3, 3, side, side)
    monkeypatch.setattr(encoder, "cpu_tokens_per_call", 3 * encoder.tokens_per_image(pixels))
    encoder(pixels)
    assert calls == [3]


def tiny_vit() -> StructureEncoder:
    """A one-block timm ViT with oblong patches (8 high, 4 wide), 2 registers and any input size."""
    model_args = {"patch_size": (8, 4), "img_size": (32, 32), "dynamic_img_size": True, "reg_tokens": 2}
    model_args |= {"depth": 1, "embed_dim": 32, "num_heads": 2}
    return StructureEncoder.build("vit_tiny_patch16_224", **model_args)


def record_calls(encoder: ImageEncoder, monkeypatch) -> list[int]:
    """The batch size of each call of `encoder.encode` from now on."""
    calls: list[int] = []
    encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda chunk: calls.append(chunk.shape[0]) or encode(chunk))
    return calls


def test_tokens_per_image_is_the_count_the_backbone_makes() -> None:
    # oblong images (and patches): a height taken for a width, or a patch side for the other, shows
    structure = tiny_vit()
    pixels = torch.zeros(1, 3, 40, 24)
    made = structure.model.forward_features(pixels).shape[1]
    assert structure.tokens_per_image(pixels) == made == 5 * 6 + 1 + 2  # patches, CLS, registers
    clip = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    projected = ProjectedCLIPEncoder.build(**clip, image_size=32, patch_size=8, projection_dim=16)
    pixels = torch.zeros(1, 3, 48, 24)
    made = projected.model(pixel_values=pixels, interpolate_pos_encoding=True).last_hidden_state.shape[1]
    assert projected.tokens_per_image(pixels) == made == 6 * 3 + 1  # patches and CLS


def test_a_timm_model_without_tokens_is_never_split(monkeypatch) -> None:
    """The cap is for the activations of a transformer's tokens: a CNN runs its batch in one call."""
    cnn = TimmOutputEncoder(timm.create_model("test_resnet", pretrained=False, num_classes=8))
    pixels = torch.rand(3, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    assert cnn.tokens_per_image(pixels) == 0
    calls = record_calls(cnn, monkeypatch)
    monkeypatch.setattr(cnn, "cpu_tokens_per_call", 1)
    assert cnn(pixels).shape == (3, 8)
    assert calls == [3]


def test_a_budget_below_one_image_encodes_one_image_per_call(monkeypatch) -> None:
    encoder = tiny_vit()
    pixels = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    whole = encoder(pixels)
    calls = record_calls(encoder, monkeypatch)
    monkeypatch.setattr(encoder, "cpu_tokens_per_call", encoder.tokens_per_image(pixels) - 1)
    torch.testing.assert_close(encoder(pixels), whole, atol=1e-5, rtol=1e-5)
    assert calls == [1, 1, 1]


def test_other_devices_get_the_whole_batch_in_one_call(monkeypatch) -> None:
    # the meta device stands for a GPU here: not a CPU, and it runs the real encoder (shapes only)
    encoder = tiny_vit().to("meta")
    calls = record_calls(encoder, monkeypatch)
    monkeypatch.setattr(encoder, "cpu_tokens_per_call", 1)
    features = encoder(torch.zeros(5, 3, 32, 32, device="meta"))
    assert calls == [5]
    assert features.shape == (5, 32) and features.device.type == "meta"
