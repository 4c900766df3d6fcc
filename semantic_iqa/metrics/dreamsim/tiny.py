"""Randomly initialised DreamSim models of the real timm classes, for tests and benchmarks.

`build_random_dreamsim(model_type, preset, seed)`: every branch of one of the authors'
models, as a timm ViT of its real architecture ("full": the reference sizes; "tiny": two
blocks of width 32), with random weights. Everything downstream runs for real, offline;
the distances mean nothing.
"""

from __future__ import annotations

from typing import Any

import torch

from ...backbones import TimmOutputEncoder
from ...config import BackboneSpec
from .branches import model_type_branches
from .config import DreamSimConfig
from .model import DreamSim

TINY_SIZES: dict[str, Any] = {"embed_dim": 32, "depth": 2, "num_heads": 2}
TINY_PROJECTION = 24  # the CLIP branches' projection width in the tiny preset (512 in the reference)


def build_random_dreamsim(model_type: str = "ensemble", preset: str = "tiny", seed: int = 0) -> DreamSim:
    """A DreamSim model of the real timm classes with random weights (tests, benchmarks).

    Args:
        model_type: one of the authors' models ("ensemble", "dino_vitb16", "clip_vitb32", "open_clip_vitb32").
        preset: "tiny" (seconds on a CPU) or "full" (the reference sizes, ViT-B).
        seed: seeds every random tensor; the same seed gives the same model.
    """
    branches = model_type_branches(model_type)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        encoders = {}
        for item in branches:
            args = dict(item.model_args)
            if preset == "tiny":
                args.update(TINY_SIZES)
                if args.get("num_classes"):
                    args["num_classes"] = TINY_PROJECTION
            encoders[item.role] = TimmOutputEncoder.build(item.architecture, **args)
            if preset == "tiny":
                _spread(encoders[item.role])
    finally:
        torch.random.set_rng_state(state)
    specs = {
        item.role: BackboneSpec("timm", f"{item.architecture} ({preset}, random)", path=item.role) for item in branches
    }
    config = DreamSimConfig.for_branches(model_type, branches, **specs)
    config = DreamSimConfig(
        **{
            **config.__dict__,
            "provenance": {
                "created_by": "semantic_iqa.metrics.dreamsim.tiny.build_random_dreamsim",
                "preset": preset,
                "seed": seed,
                "note": "random weights: distances are meaningless",
            },
        }
    )
    return DreamSim(config, encoders).eval()


def build_tiny(seed: int = 0) -> DreamSim:
    """The tiny ensemble (the registry entry's `tiny` builder)."""
    return build_random_dreamsim("ensemble", "tiny", seed=seed)


# With timm's default init every image's feature is nearly the class token plus the position
# embeddings, the same for all: distances of the tiny ensemble between noise, flat grey, a
# ramp and dim noise were 0.009-0.045. Scaling the blocks' linear weights by 5 lets the image
# content through: 0.10-1.43 on the same pairs (seed 0), so a wrong sign or a swapped
# branch shows. The "full" preset keeps timm's initialisation.
_TINY_BLOCK_GAIN = 5.0


def _spread(encoder: TimmOutputEncoder) -> None:
    with torch.no_grad():
        for block in encoder.model.blocks:
            for layer in (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2):
                layer.weight.mul_(_TINY_BLOCK_GAIN)
