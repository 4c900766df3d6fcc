"""On a CPU, image encoders split a batch into calls of at most `cpu_tokens_per_call` tokens."""

from __future__ import annotations

import pytest
import torch

from semantic_iqa.backbones import ImageEncoder
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
