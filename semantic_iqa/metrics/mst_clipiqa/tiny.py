"""Randomly initialised MST-CLIPIQA models of the real transformers classes, for tests and benchmarks.

`build_random_mst_clipiqa(variant, preset, seed)` builds the two CLIP image towers (and the
text tower) with random weights, CLIP's real tokenizer (open_clip's vocabulary file, see
`text.py`), and a head initialised so that different images get clearly different scores.
Everything downstream runs for real, offline; the scores mean nothing.
"""

from __future__ import annotations

from typing import Any

import torch

from ...backbones import CLIPTextEncoder, ProjectedCLIPEncoder
from ...config import BackboneSpec
from .config import (
    REFERENCE_COARSE_CONFIG,
    REFERENCE_FINE_CONFIG,
    REFERENCE_TEXT_CONFIG,
    MSTCLIPIQAConfig,
    check_variant,
)
from .model import MSTCLIPIQA
from .text import build_clip_tokenizer

# Sizes of the random models per preset: tiny towers of the real classes (224 px, the real
# 49,408-token vocabulary), or the reference sizes. `embed_dim`/`hidden_dim` are the fusion's.
_TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
RANDOM_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "coarse": {**_TINY_VISION, "image_size": 224, "patch_size": 32, "projection_dim": 64},
        "fine": {**_TINY_VISION, "image_size": 224, "patch_size": 16, "projection_dim": 64},
        "text": {
            "vocab_size": 49408,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "projection_dim": 64,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
        "embed_dim": 64,
        "hidden_dim": 16,
    },
    "full": {
        "coarse": REFERENCE_COARSE_CONFIG,
        "fine": REFERENCE_FINE_CONFIG,
        "text": REFERENCE_TEXT_CONFIG,
        "embed_dim": 512,
        "hidden_dim": 128,
    },
}


def build_random_mst_clipiqa(variant: str = "A", preset: str = "tiny", seed: int = 0) -> MSTCLIPIQA:
    """An MST-CLIPIQA model of the real transformers classes with random weights (tests, benchmarks).

    Args:
        variant: "A" or "B".
        preset: "tiny" (seconds on a CPU) or "full" (the reference sizes).
        seed: seeds every random tensor; the same seed gives the same model.

    The tokenizer is CLIP's real one (`text.build_clip_tokenizer`). Variant A's template
    features are computed by a random text tower that is then dropped, as for a real model.
    Scores mean nothing, but different images get clearly different scores.
    """
    sizes = RANDOM_PRESETS[preset]
    config = MSTCLIPIQAConfig(
        variant=check_variant(variant),
        coarse=BackboneSpec("transformers", f"CLIPVisionModelWithProjection ({preset}, random)", path="coarse"),
        fine=BackboneSpec("transformers", f"CLIPVisionModelWithProjection ({preset}, random)", path="fine"),
        text=BackboneSpec("transformers", f"CLIP text model ({preset}, random)", path="text"),
        embed_dim=sizes["embed_dim"],
        hidden_dim=sizes["hidden_dim"],
        provenance={
            "created_by": "semantic_iqa.metrics.mst_clipiqa.build_random_mst_clipiqa",
            "preset": preset,
            "seed": seed,
            "note": "random weights: scores are meaningless",
        },
    )
    tokenizer = build_clip_tokenizer()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        coarse = ProjectedCLIPEncoder.build(**sizes["coarse"], **_SPREAD[preset]["vision"])
        fine = ProjectedCLIPEncoder.build(**sizes["fine"], **_SPREAD[preset]["vision"])
        text = CLIPTextEncoder.build(tokenizer, with_projection=variant == "A", **sizes["text"])
        model = MSTCLIPIQA(config, coarse, fine, text if variant == "B" else None)
        if variant == "A":
            model.compute_text_features(text)
        _spread_scores(model, _SPREAD[preset])
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()


def build_tiny(seed: int = 0, variant: str = "A") -> MSTCLIPIQA:
    """The tiny preset of `variant` (the registry entries' `tiny` builder)."""
    return build_random_mst_clipiqa(variant, "tiny", seed=seed)


# How the random models are made to give different images clearly different scores. With
# transformers' default init every random image gets nearly the same CLIP feature, and the
# tiny variant-A model scores every image 2.0 +- 0.05 (variant B: +- 0.1, prompts without
# effect since alpha starts at 0). A 10x vision init spreads the features; temperature 50
# (not 100) keeps the five probabilities away from one-hot, so a wrong softmax shows; alpha
# 10 lets the prompt move variant B's score by about 0.4-1. Measured on noise, photo crops,
# flat colours and a gradient, seeds 0-2: A spreads over about 1.1-5.0 (std 0.7-0.9), B over
# about -6..2.5 (std 1.1-1.9). The "full" preset keeps the reference initialisation.
_SPREAD: dict[str, dict[str, Any]] = {
    "tiny": {"vision": {"initializer_factor": 10.0}, "temperature": 50.0, "alpha": 10.0},
    "full": {"vision": {}, "temperature": 100.0, "alpha": 0.0},
}


def _spread_scores(model: MSTCLIPIQA, spread: dict[str, Any]) -> None:
    with torch.no_grad():
        if model.variant == "A":
            model.head.temperature.fill_(spread["temperature"])
        else:
            model.head.alpha.fill_(spread["alpha"])
