"""Randomly initialised DSS-SQA models of the real classes, for tests and benchmarks.

`make_tiny(folder)` writes a complete weights folder whose backbones are a small timm
DINOv3 ViT and a small transformers `CLIPVisionModel`, stored locally, with random heads
(scaled so that scores of different pairs spread over roughly 1..4, see `HEAD_GAINS`) and
non-trivial BatchNorm statistics. Everything downstream (loading, preprocessing, fusion,
gate, CLI) then runs for real, offline, in seconds. Its scores mean nothing.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ...backbones import SemanticEncoder, StructureEncoder
from .config import REFERENCE_CONFIG, REFERENCE_SEMANTIC_CONFIG, REFERENCE_STRUCTURE_ARGS, BackboneSpec
from .model import DSSSQA

# Architecture sizes per preset: tiny ones of the real classes, and the reference sizes.
ARCHITECTURES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "structure": {"embed_dim": 32, "depth": 2, "num_heads": 2},
        "semantic": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 336,
            "patch_size": 28,
            "projection_dim": 16,
            # Default init makes every random image's pooled feature nearly the same
            # (cosine ~1.0); a larger one spreads cosines so the gate has work to do.
            "initializer_factor": 10.0,
        },
    },
    "full": {"structure": REFERENCE_STRUCTURE_ARGS, "semantic": REFERENCE_SEMANTIC_CONFIG},
}

# Factors applied to the weights and biases of the heads' three linear layers, per preset.
# `nn.Linear`'s default init shrinks activations at every layer, so an untouched tiny head
# gives logits of about 0.1 and every pair scores 2.47-2.51: a test could not tell one
# pair from another, nor catch a wrong score. With (3, 3, 6) the tiny model's logits have
# a standard deviation of about 3 and its scores spread over about 1.7-3.8 (seed 0, gate
# off, random-noise and photo pairs), while the gate (cos < 0.4) still fires for some
# random pairs and not for others. The "full" preset keeps the default init.
HEAD_GAINS: dict[str, tuple[float, float, float]] = {"tiny": (3.0, 3.0, 6.0), "full": (1.0, 1.0, 1.0)}


def build_random_model(preset: str = "tiny", seed: int = 0, num_folds: int = 5) -> DSSSQA:
    """A DSS-SQA model with random weights; backbones marked as stored locally.

    Args:
        preset: "tiny" (seconds on a CPU) or "full" (the reference architecture's sizes).
        seed: seeds every random tensor; the same seed gives the same model.
        num_folds: number of fold heads.
    """
    sizes = ARCHITECTURES[preset]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        structure = StructureEncoder.build(REFERENCE_CONFIG.structure.name, **sizes["structure"])
        semantic = SemanticEncoder.build(**sizes["semantic"])
        config = replace(
            REFERENCE_CONFIG,
            structure=BackboneSpec("timm", f"{REFERENCE_CONFIG.structure.name} ({preset}, random)", path="structure"),
            semantic=BackboneSpec("transformers", f"CLIPVisionModel ({preset}, random)", path="semantic"),
            structure_dim=structure.feature_dim,
            semantic_dim=semantic.feature_dim,
            num_folds=num_folds,
            provenance={
                "created_by": "semantic_iqa.testing.build_random_model",
                "preset": preset,
                "seed": seed,
                "note": "random weights: scores are meaningless",
            },
        )
        model = DSSSQA(config, structure, semantic)
        _randomise_norm_statistics(model)
        _scale_head_layers(model, HEAD_GAINS[preset])
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()


def build_tiny(seed: int = 0) -> DSSSQA:
    """The tiny preset with five random fold heads (the registry entry's `tiny` builder)."""
    return build_random_model("tiny", seed=seed)


def make_tiny(folder: str | os.PathLike, seed: int = 0, num_folds: int = 5, overwrite: bool = False) -> Path:
    """Write a tiny random weights folder (real timm/transformers classes) and return its path."""
    return build_random_model("tiny", seed=seed, num_folds=num_folds).save_pretrained(folder, overwrite=overwrite)


def _randomise_norm_statistics(model: DSSSQA) -> None:
    # Identity BatchNorm statistics would hide a wrong eval-mode normalisation; make them
    # differ per fold and channel.
    heads = model.heads
    with torch.no_grad():
        heads.norm_running_mean.normal_(0.0, 0.2)
        heads.norm_running_var.uniform_(0.5, 2.0)
        heads.norm_weight.uniform_(0.5, 1.5)
        heads.norm_bias.normal_(0.0, 0.1)
        heads.norm_num_batches_tracked.fill_(100)


def _scale_head_layers(model: DSSSQA, gains: tuple[float, float, float]) -> None:
    # Multiply each linear layer (weight and bias) of every fold by its gain: see HEAD_GAINS.
    heads = model.heads
    layers = (
        (heads.linear1_weight, heads.linear1_bias),
        (heads.linear2_weight, heads.linear2_bias),
        (heads.linear3_weight, heads.linear3_bias),
    )
    with torch.no_grad():
        for (weight, bias), gain in zip(layers, gains, strict=True):
            weight.mul_(gain)
            bias.mul_(gain)
